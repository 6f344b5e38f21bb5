"""The background plate: the clip's background without the person, at the clip's full resolution.

Why: with a clean plate the generator need not learn the room, and its output can be composited over it. How:
per pixel, the median over the sampled frames in which that pixel is background, i.e. outside the person's matte
dilated by a margin (the margin covers soft matte edges, hair and the shadow right at the body). The median
ignores a minority of bad samples (a missed detection, a shadow passing by). Pixels the person never uncovers are
inpainted and recorded in `Plate.mask`.

The plate is only meaningful for a static camera. Each sampled frame's background is compared with the plate
(median absolute difference, 8-bit levels; the clip's figure is the median over frames). Over the whole
background (`residual`) this catches light changes and large pans, but not a shake: most of a room is flat, and
moving a flat wall changes nothing. So the same figure is also taken over the plate's edges (`edge_residual`),
where a move of 2 px already shows as 10+ levels. Measured on the shared clips (full resolution, 48 frames):
residual 0-3 levels; edge residual 0-1.3 for the static cameras (musev, ntu; romp and ubc have no edges), 24 for
hybrik_taiji, whose camera creeps by ~2% of the height; simulated shake of 1 px gives 5-7, of 2.5 px 11-16.

A plate is also refused (`usable=False`) when the person hardly moves: the never-uncovered area is then about
the person's whole (dilated) silhouette, over 0.9 of it (ntu: 0.95), while people moving in place leave 0.4-0.6
(romp, ubc, musev); or when over a quarter of the frame is never seen. Callers then train on whole frames.

Memory: the sampled frames are held as uint8 (48 frames of 1920x1080 are 300 MB) and the median is taken in row
bands, so the peak stays well under 1 GB whatever the clip's length.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .errors import EdnError
from .events import Reporter
from .video import open_source, read_image, write_image

_MATTE_NAME = re.compile(r"matte_(\d{6,})\.png")
_SENTINEL = 256  # above every 8-bit level: person samples sort after all background samples


@dataclass(frozen=True)
class PlateConfig:
    """How a plate is estimated; the defaults are calibrated on the shared clips (see tests/test_plate.py)."""

    max_frames: int = 48  # frames sampled evenly over the range: the median's sample count (and memory)
    margin: float = 0.03  # matte dilation as a share of the frame's shorter side (32 px at 1080p): the matte
    #                       lags fast limbs and misses soft shadows; 0.015 left a ghost of romp's legs
    matte_threshold: int = 64  # matte level (0-255) from which a pixel counts as person
    min_share: float = 0.1  # a pixel needs background in this share of the sampled frames (at least 2), else it
    #                         is inpainted: a median of 1-2 samples takes in every matte error (romp: ghosts)
    static_threshold: float = 6.0  # residual (levels) above which the background is not static (light, pan)
    edge_gradient: float = 6.0  # plate gradient (levels per pixel) from which a pixel counts as an edge
    min_edge_share: float = 0.005  # below this share of edge pixels the scene is flat: no edge residual
    edge_threshold: float = 10.0  # edge residual (levels) above which the camera is taken to move (a 2 px shake)
    max_hole: float = 0.25  # never-uncovered share of the frame above which the plate is not usable
    max_still: float = 0.8  # never-uncovered area over the person's (dilated) area above which the person is
    #                         taken to stand still (still: ~1; ntu 0.95; dancing in place 0.4-0.6)
    inpaint_radius: int = 5  # cv2.inpaint's neighbourhood, pixels at the inpainting scale
    inpaint_side: int = 640  # holes are inpainted at most this long side, then scaled up: fast at 4K
    band_bytes: int = 64 << 20  # working memory of one row band of the median

    def check(self) -> None:
        if self.max_frames < 1:
            raise EdnError(f"--max-frames must be at least 1, not {self.max_frames}")
        if not 0.0 <= self.min_share <= 1.0:
            raise EdnError(f"min_share must be in [0, 1], not {self.min_share}")
        if not 0.0 <= self.margin < 0.5:
            raise EdnError(f"margin must be in [0, 0.5), not {self.margin}")
        if not 0.0 <= self.max_hole <= 1.0:
            raise EdnError(f"max_hole must be in [0, 1], not {self.max_hole}")


@dataclass
class Plate:
    """A background plate and how far it can be trusted."""

    image: np.ndarray  # BGR uint8, the clip's full resolution
    mask: np.ndarray  # uint8, 255 where no sampled frame showed the background (inpainted)
    residual: float | None = None  # median over frames of the background's median |frame - plate|, 8-bit levels
    edge_residual: float | None = None  # the same over edge pixels only, where a camera move shows (None: flat)
    static: bool | None = None  # both residuals within their thresholds (None: not measured)
    usable: bool = True  # static and enough background seen; else callers train on whole frames
    reason: str = ""  # why not usable ("" when usable)
    person_share: float | None = None  # median share of the frame under the dilated matte
    frames: list[int] = field(default_factory=list)  # source frame numbers sampled
    frame_residuals: list[float] = field(default_factory=list)  # `residual` per sampled frame, same order
    warnings: list[str] = field(default_factory=list)

    @property
    def uncovered(self) -> float:
        """Share of the frame estimated from real background samples (not inpainted)."""
        return float(np.count_nonzero(self.mask == 0)) / max(1, self.mask.size)

    def summary(self) -> dict:
        """The figures as JSON-able values, for a done event or a manifest (and `load_plate`'s `summary`)."""
        h, w = self.image.shape[:2]
        return {"width": w, "height": h, "residual": self.residual, "edge_residual": self.edge_residual,
                "static": self.static, "usable": self.usable, "reason": self.reason,
                "uncovered": round(self.uncovered, 4), "person_share": self.person_share,
                "frames": len(self.frames), "frame_numbers": list(self.frames), "warnings": list(self.warnings)}

    def save(self, plate_png: str | Path, mask_png: str | Path | None = None) -> tuple[Path, Path]:
        """Write the plate and its mask (default: `mask_path(plate_png)`) atomically."""
        mask_png = mask_path(plate_png) if mask_png is None else Path(mask_png)
        return write_image(plate_png, self.image), write_image(mask_png, self.mask)


def mask_path(plate_png: str | Path) -> Path:
    """`plate.png` -> `plate_mask.png`, beside it (the names a dataset folder uses)."""
    plate_png = Path(plate_png)
    return plate_png.with_name(f"{plate_png.stem}_mask{plate_png.suffix}")


def load_plate(plate_png: str | Path, mask_png: str | Path | None = None, summary: dict | None = None) -> Plate:
    """A plate saved by `Plate.save`; `summary` (from `Plate.summary`) restores its figures."""
    mask_png = mask_path(plate_png) if mask_png is None else Path(mask_png)
    image = read_image(plate_png)
    mask = read_image(mask_png, cv2.IMREAD_GRAYSCALE)
    if mask.shape != image.shape[:2]:
        raise EdnError(f"the plate mask is {mask.shape[1]}x{mask.shape[0]} but the plate is "
                       f"{image.shape[1]}x{image.shape[0]}", path=mask_png)
    s = summary or {}
    return Plate(image=image, mask=np.where(mask > 127, 255, 0).astype(np.uint8), residual=s.get("residual"),
                 edge_residual=s.get("edge_residual"), static=s.get("static"), usable=bool(s.get("usable", True)),
                 reason=s.get("reason", ""), person_share=s.get("person_share"),
                 frames=list(s.get("frame_numbers", [])), warnings=list(s.get("warnings", [])))


# ---------------------------------------------------------------------------------------------------------------
# estimation
# ---------------------------------------------------------------------------------------------------------------
def estimate_plate(source: str | Path, mattes_dir: str | Path, *, start: int | None = None, end: int | None = None,
                   config: PlateConfig = PlateConfig(), reporter: Reporter | None = None) -> Plate:
    """The background plate of `source` (video, image folder) over frames `start`..`end` (inclusive), from the
    person mattes in `mattes_dir` (`matte_NNNNNN.png`, source pixels, as `edn pose extract --mattes` writes)."""
    config.check()
    clip = open_source(source, start, end)
    mattes_dir = Path(mattes_dir)
    frames, backgrounds, numbers = _sample(clip, _matte_files(mattes_dir, clip), config, reporter)
    image, counts = _masked_median(frames, backgrounds, config.band_bytes)
    min_samples = max(2, math.ceil(config.min_share * len(frames))) if len(frames) > 1 else 1
    mask = np.where(counts < min_samples, 255, 0).astype(np.uint8)
    image = _inpaint(image, mask, config)
    plate = Plate(image=image, mask=mask, frames=numbers)
    plate.person_share = round(float(np.median([1.0 - b.mean() for b in backgrounds])), 4)
    _measure(plate, frames, backgrounds, config)
    _judge(plate, Path(source), config)
    return plate


def _matte_files(mattes_dir: Path, clip) -> dict[int, Path]:
    """The clip's frames that have a matte in `mattes_dir`, by source frame number."""
    if not mattes_dir.is_dir():
        raise EdnError("mattes folder not found", path=mattes_dir)
    last = clip.last_frame if clip.last_frame is not None else math.inf
    found = {}
    for p in mattes_dir.iterdir():
        m = _MATTE_NAME.fullmatch(p.name)
        if m and clip.first_frame <= int(m.group(1)) <= last:
            found[int(m.group(1))] = p
    if not found:
        upto = "" if last == math.inf else f"..{last}"
        raise EdnError(f"no matte_NNNNNN.png for frames {clip.first_frame}{upto} of {clip.path}", path=mattes_dir)
    return found


def _sample(clip, mattes: dict[int, Path], config: PlateConfig, reporter: Reporter | None):
    """Decode the sampled frames (evenly spread over those with a matte) and their background masks."""
    have = sorted(mattes)
    picks = sorted({have[i] for i in np.linspace(0, len(have) - 1, min(config.max_frames, len(have))).round()
                    .astype(int)})
    radius = max(1, round(config.margin * min(clip.width, clip.height)))
    wanted = set(picks)
    frames, backgrounds, numbers = [], [], []
    for n, img in clip:
        if n in wanted:
            person = _read_matte(mattes[n], n, img.shape[:2]) >= config.matte_threshold
            # background: farther than `radius` from the person (a round dilation, faster than cv2.dilate's)
            backgrounds.append(cv2.distanceTransform(np.where(person, 0, 255).astype(np.uint8), cv2.DIST_L2,
                                                     cv2.DIST_MASK_5) > radius)
            frames.append(img)
            numbers.append(n)
            if reporter is not None:
                reporter.progress(len(numbers), len(picks), stage="plate", frame=n)
        if n >= picks[-1]:
            break
    if not frames:
        raise EdnError(f"none of the frames with a matte ({have[0]}..{have[-1]}) could be read", path=clip.path)
    return frames, backgrounds, numbers


def _read_matte(path: Path, frame: int, shape: tuple[int, int]) -> np.ndarray:
    """A person matte as uint8 (RGBA: its alpha; colour: its brightest channel; 16-bit: the high byte)."""
    m = read_image(path, cv2.IMREAD_UNCHANGED)
    if m.dtype == np.uint16:
        m = (m >> 8).astype(np.uint8)
    elif m.dtype != np.uint8:
        raise EdnError(f"a matte must be an 8- or 16-bit image, not {m.dtype}", path=path, frame=frame)
    if m.ndim == 3:
        m = m[:, :, 3] if m.shape[2] == 4 else m.max(axis=2)
    if m.shape != shape:
        raise EdnError(f"the matte is {m.shape[1]}x{m.shape[0]} but the footage is {shape[1]}x{shape[0]} "
                       "(mattes from another clip, or scaled?)", path=path, frame=frame)
    return m


def _masked_median(frames: list[np.ndarray], backgrounds: list[np.ndarray], band_bytes: int):
    """Per pixel and channel, the median of the background samples; and each pixel's sample count.

    Person samples are replaced by a sentinel above 255 and each pixel's samples are sorted (frames on the last,
    contiguous axis: 4x faster than sorting across frames), so the k background samples of a pixel come first
    and its median sits at index (k-1)//2 (and k//2 for even k)."""
    h, w = frames[0].shape[:2]
    n = len(frames)
    rows = max(1, band_bytes // (n * w * 3 * 2 * 2))  # uint16 band plus its sorted copy
    image = np.zeros((h, w, 3), np.uint8)
    counts = np.zeros((h, w), np.int32)
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        bg = np.stack([b[r0:r1] for b in backgrounds], axis=-1)  # R, W, n
        vals = np.stack([f[r0:r1] for f in frames], axis=-1).astype(np.uint16)  # R, W, 3, n
        np.copyto(vals, _SENTINEL, where=~bg[:, :, None, :])
        vals.sort(axis=-1)
        k = bg.sum(axis=-1)
        lo, hi = np.maximum(k - 1, 0) // 2, k // 2  # equal for odd k; k == 0 is masked below
        a = np.take_along_axis(vals, lo[:, :, None, None], axis=-1)[..., 0]
        b = np.take_along_axis(vals, hi[:, :, None, None], axis=-1)[..., 0]
        med = (a.astype(np.uint32) + b + 1) // 2
        image[r0:r1] = np.where(k[..., None] > 0, np.minimum(med, 255), 0).astype(np.uint8)
        counts[r0:r1] = k
    return image, counts


def _inpaint(image: np.ndarray, mask: np.ndarray, config: PlateConfig) -> np.ndarray:
    """Fill the never-uncovered pixels from their surroundings (Telea). Large frames are inpainted at a reduced
    scale and only the hole is replaced: a hole is smooth fill anyway, and full-res Telea takes seconds."""
    if not mask.any():
        return image
    h, w = mask.shape
    scale = min(1.0, config.inpaint_side / max(h, w))
    if scale >= 1.0:
        return cv2.inpaint(image, mask, config.inpaint_radius, cv2.INPAINT_TELEA)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    small_mask = (cv2.resize(mask, size, interpolation=cv2.INTER_AREA) > 0).astype(np.uint8) * 255
    filled = cv2.resize(cv2.inpaint(small, small_mask, config.inpaint_radius, cv2.INPAINT_TELEA), (w, h),
                        interpolation=cv2.INTER_LINEAR)
    return np.where(mask[..., None] > 0, filled, image)


def _measure(plate: Plate, frames: list[np.ndarray], backgrounds: list[np.ndarray], config: PlateConfig) -> None:
    """Set the residuals and `static`. Per frame: the median over its background pixels (every other row and
    column) of |frame - plate|, channel mean, in 8-bit levels; the clip's figure is the median over frames.
    The edge residual looks only at strong plate edges: a pan or a shake of a pixel or two hardly changes flat
    walls, so the whole-background median stays at noise level, but edges then differ by tens of levels."""
    known = (plate.mask == 0)[::2, ::2]
    grey = cv2.cvtColor(plate.image, cv2.COLOR_BGR2GRAY)
    slope = cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)) / 8  # levels/px
    edges = (slope[::2, ::2] >= config.edge_gradient) & known
    flat = edges.sum() < config.min_edge_share * max(1, known.sum())
    whole, edge = [], []
    for frame, background in zip(frames, backgrounds):
        diff = cv2.absdiff(frame[::2, ::2], plate.image[::2, ::2]).sum(axis=2, dtype=np.uint16)
        sel = background[::2, ::2] & known
        whole.append(float(np.median(diff[sel])) / 3 if sel.any() else float("nan"))
        sel &= edges
        edge.append(float(np.median(diff[sel])) / 3 if not flat and sel.any() else float("nan"))
    plate.frame_residuals = [round(r, 2) for r in whole]
    plate.residual = _median(whole)
    plate.edge_residual = None if flat else _median(edge)
    plate.static = bool(plate.residual is not None and plate.residual <= config.static_threshold and
                        (plate.edge_residual is None or plate.edge_residual <= config.edge_threshold))


def _median(values: list[float]) -> float | None:
    """Median of the finite values, rounded to 0.01; None when there are none."""
    seen = [v for v in values if np.isfinite(v)]
    return round(float(np.median(seen)), 2) if seen else None


def _judge(plate: Plate, source: Path, config: PlateConfig) -> None:
    """Decide `usable` and say why not, naming the clip and the figure."""
    hole = 1.0 - plate.uncovered
    still = hole / plate.person_share if plate.person_share else 0.0
    if plate.residual is None:
        plate.usable = False
        plate.reason = "no sampled frame shows any background the plate could be checked against"
    elif not plate.static:
        plate.usable = False
        if plate.residual > config.static_threshold:
            plate.reason = (f"the background differs from the plate by {plate.residual:.1f} levels (a static camera "
                            f"in steady light stays under {config.static_threshold:g}): the camera or the light moves")
        else:
            plate.reason = (f"the camera seems to move: background edges differ from the plate by "
                            f"{plate.edge_residual:.1f} levels (a static camera stays under {config.edge_threshold:g})")
    elif hole > config.max_hole:
        plate.usable = False
        plate.reason = (f"the person never uncovers {hole:.1%} of the frame (more than {config.max_hole:.0%}): "
                        "too little background to estimate a plate")
    elif still > config.max_still:
        plate.usable = False
        plate.reason = (f"the person hardly moves: the background never seen ({hole:.1%} of the frame) is "
                        f"{still:.0%} of the area they cover, so the plate would be invented where they stand")
    if plate.reason:
        plate.warnings.append(f"{source}: no usable background plate: {plate.reason}; train on whole frames")
