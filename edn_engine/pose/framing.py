"""How a source frame maps into an output frame of another size: letterbox (fit, pad), crop (fill, cut), or a
window (a rectangle of the source, as the person-centred training window is: `pose.window`).

One `Framing` is recorded in each dataset (a window one per frame) and reused at generation, so poses and
pixels always map the same way. It is a uniform scale plus an offset: out = src * scale + offset.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np


@dataclasses.dataclass(frozen=True)
class Framing:
    src_size: tuple[int, int]  # (width, height) of the source
    dst_size: tuple[int, int]  # (width, height) of the output
    mode: str = "letterbox"  # "letterbox": whole frame visible, padded; "crop": output filled, centre kept;
    #                          "window": the source rectangle `window` (x0, y0, width, height) fills the output
    window: tuple[float, float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("letterbox", "crop", "window"):
            raise ValueError(f"framing mode must be 'letterbox', 'crop' or 'window', not {self.mode!r}")
        if (self.mode == "window") != (self.window is not None):
            raise ValueError("a window framing needs its window, and only it has one")

    @property
    def scale(self) -> float:
        sw, sh = self.src_size
        dw, dh = self.dst_size
        if self.mode == "window":
            return float(dw / self.window[2])
        fit = min(dw / sw, dh / sh) if self.mode == "letterbox" else max(dw / sw, dh / sh)
        return float(fit)

    @property
    def offset(self) -> tuple[float, float]:
        s = self.scale
        if self.mode == "window":
            return (-self.window[0] * s, -self.window[1] * s)
        sw, sh = self.src_size
        dw, dh = self.dst_size
        return ((dw - sw * s) / 2.0, (dh - sh * s) / 2.0)

    def matrix(self) -> np.ndarray:
        """The 2x3 affine matrix from source to output pixels."""
        s, (ox, oy) = self.scale, self.offset
        return np.array([[s, 0, ox], [0, s, oy]], dtype=np.float64)

    def pixel_matrix(self) -> np.ndarray:
        """`matrix` between pixel indices, for OpenCV's warps. A pixel's centre is at its index + 0.5, as a
        keypoint's coordinates are, so index i maps to s * (i + 0.5) + offset - 0.5: without the half pixels, a
        4x shrink's window came back 1.5 source pixels up and left of where `points` had put its pose."""
        m = self.matrix()
        m[:, 2] += 0.5 * (self.scale - 1.0)
        return m

    def back(self, img: np.ndarray, interpolation: int = cv2.INTER_LINEAR, border_value=0,
             roi: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """Resample an output-framed image back into the source frame (zeros where the output does not reach).
        A letterboxed output holds the whole source: its first and last rows and columns take the picture's edge
        value rather than a blend with the bars or the zeros beyond it.
        `roi` (x0, y0, x1, y1): only that rectangle of the source frame (see `source_roi`)."""
        x0, y0, x1, y1 = roi if roi is not None else (0, 0, *self.src_size)
        m = self.pixel_matrix()
        m[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)  # ROI pixel p is source pixel p + (x0, y0)
        border = cv2.BORDER_CONSTANT
        if self.mode == "letterbox":  # sample the picture without its bars, its edge repeated past it
            cx0, cy0, cx1, cy1 = self.content()
            img, m[:, 2] = img[cy0:cy1, cx0:cx1], m[:, 2] - (cx0, cy0)
            border = cv2.BORDER_REPLICATE
        return cv2.warpAffine(img, m, (x1 - x0, y1 - y0), flags=interpolation | cv2.WARP_INVERSE_MAP,
                              borderMode=border, borderValue=border_value)

    def content(self) -> tuple[int, int, int, int]:
        """The output's pixels that hold the source, (x0, y0, x1, y1), to the nearest whole pixel: a letterbox's
        picture without its bars (all of a crop's or a window's output)."""
        (dw, dh), (sw, sh) = self.dst_size, self.src_size
        if self.mode != "letterbox":
            return (0, 0, dw, dh)
        s, (ox, oy) = self.scale, self.offset
        return (max(0, round(ox)), max(0, round(oy)), min(dw, round(ox + sw * s)), min(dh, round(oy + sh * s)))

    def source_roi(self, within: tuple[int, int, int, int] | None = None) -> tuple[int, int, int, int] | None:
        """The source frame's pixels the output covers, (x0, y0, x1, y1), clipped to the frame (None: none).
        `within` (x0, y0, x1, y1): only those the output's pixels in that rectangle reach (all others resample to
        zero where the output is zero outside it: `compositing.paste` resamples only the person's rectangle)."""
        s, (ox, oy) = self.scale, self.offset
        (bx0, by0, bx1, by1), (sw, sh) = within or (0, 0, *self.dst_size), self.src_size
        pad = int(np.ceil(1.0 / s)) + 1  # bilinear sampling blends the edge pixel with the border that far out
        x0, y0 = max(0, int(np.floor((bx0 - ox) / s)) - pad), max(0, int(np.floor((by0 - oy) / s)) - pad)
        x1, y1 = min(sw, int(np.ceil((bx1 - ox) / s)) + pad), min(sh, int(np.ceil((by1 - oy) / s)) + pad)
        return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None

    def points(self, kp: np.ndarray) -> np.ndarray:
        """Map keypoints (..., 3) = (x, y, confidence); missing points (confidence 0) stay at 0."""
        out = np.array(kp, dtype=np.float32, copy=True)
        ox, oy = self.offset
        s = self.scale
        present = out[..., 2] > 0
        out[..., 0] = np.where(present, out[..., 0] * s + ox, 0.0)
        out[..., 1] = np.where(present, out[..., 1] * s + oy, 0.0)
        return out

    def image(self, img: np.ndarray, interpolation: int = cv2.INTER_AREA, border_value=0) -> np.ndarray:
        """Resample an image (H, W) or (H, W, C) from source to output framing."""
        if self.scale < 1 and interpolation == cv2.INTER_AREA:
            # warpAffine has no area filter: shrink with resize first, then place (same mapping, no aliasing)
            return _shrink_then_warp(img, self, border_value)
        if interpolation == cv2.INTER_AREA:
            interpolation = cv2.INTER_LINEAR
        out = cv2.warpAffine(img, self.pixel_matrix(), tuple(self.dst_size), flags=interpolation,
                             borderMode=self._border(), borderValue=border_value)
        return self._bars(out, border_value)

    def _border(self) -> int:
        """A window pads beyond the frame; a letterbox or a crop holds only the source, so its edge pixels repeat
        the source's edge rather than blend with the padding (a letterbox's bars are laid after: `_bars`)."""
        return cv2.BORDER_CONSTANT if self.mode == "window" else cv2.BORDER_REPLICATE

    def _bars(self, out: np.ndarray, border_value) -> np.ndarray:
        """`out` with a letterbox's bars (the pixels outside `content`) set to border_value."""
        if self.mode == "letterbox":
            x0, y0, x1, y1 = self.content()
            picture = out[y0:y1, x0:x1].copy()
            out[...] = border_value
            out[y0:y1, x0:x1] = picture
        return out

    def to_dict(self) -> dict:
        d = {"src_size": list(self.src_size), "dst_size": list(self.dst_size), "mode": self.mode}
        if self.window is not None:
            d["window"] = [round(float(v), 3) for v in self.window]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Framing":
        window = tuple(float(v) for v in d["window"]) if d.get("window") is not None else None
        return cls(tuple(d["src_size"]), tuple(d["dst_size"]), d.get("mode", "letterbox"), window)


class Mipmap:
    """One picture framed again and again (the background plate, cut into every frame's window in training and
    in generation), kept beside copies of itself shrunk by whole factors, so that each downscale starts from the
    copy just above its scale. Area-shrinking a 1000-pixel window of a 1080p plate straight to 256 pixels took
    4 ms quiet and 22 ms under generation's load; from the copy 3x smaller, about a quarter. The two-step filter
    differs from `Framing.image` about as much as that one differs from an exact box filter: on smooth pictures
    such as a plate, by about a tenth of a grey level on average; on fine texture, by a few."""

    def __init__(self, img: np.ndarray):
        self.img = img
        self._copies: dict[int, np.ndarray] = {}

    def image(self, fr: Framing, border_value=0) -> np.ndarray:
        """`fr.image(self.img)` (area filtered), from the largest copy no smaller than the output needs."""
        if (self.img.shape[1], self.img.shape[0]) != tuple(fr.src_size):
            raise ValueError(f"a {self.img.shape[1]}x{self.img.shape[0]} picture framed as a "
                             f"{fr.src_size[0]}x{fr.src_size[1]} source")
        k = int(1.0 / fr.scale + 1e-9)  # copy k is about one pixel per output pixel, or more (floor's rounding)
        if k < 2:
            return fr.image(self.img, border_value=border_value)
        if k not in self._copies:
            h, w = self.img.shape[:2]
            self._copies[k] = cv2.resize(self.img, (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
        copy = self._copies[k]
        sw, sh = fr.src_size
        return _shrink_then_warp(copy, fr, border_value, (copy.shape[1] / sw, copy.shape[0] / sh))


def _shrink_then_warp(img: np.ndarray, fr: Framing, border_value,
                      copy_scale: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """`fr.image` for a downscale: an area-filtered resize of the source pixels the output covers (a person's
    window is a part of the frame: resizing only that part halved the cost at 1080p), then a translation.
    `img` may be the source shrunk by `copy_scale` (a `Mipmap` copy: its size over the source's)."""
    s, (cx, cy) = fr.scale, copy_scale
    matches = (img.shape[1], img.shape[0]) == (round(fr.src_size[0] * cx), round(fr.src_size[1] * cy))
    roi = fr.source_roi() if matches else None
    if roi is not None:  # the ROI in the copy's pixels, rounded outwards
        x0, y0 = int(np.floor(roi[0] * cx)), int(np.floor(roi[1] * cy))
        x1, y1 = min(img.shape[1], int(np.ceil(roi[2] * cx))), min(img.shape[0], int(np.ceil(roi[3] * cy)))
    else:
        x0, y0, x1, y1 = 0, 0, img.shape[1], img.shape[0]
    part = img[y0:y1, x0:x1]
    h, w = part.shape[:2]
    small = cv2.resize(part, (max(1, round(w * s / cx)), max(1, round(h * s / cy))), interpolation=cv2.INTER_AREA)
    sx, sy = small.shape[1] / w * cx, small.shape[0] / h * cy  # small's pixels per source pixel, rounding included
    ox, oy = fr.offset
    # resize keeps pixel centres (index + 0.5) in place; the warp maps them on as `Framing.pixel_matrix` does
    m = np.array([[s / sx, 0, ox + s * x0 / cx + 0.5 * (s / sx - 1)],
                  [0, s / sy, oy + s * y0 / cy + 0.5 * (s / sy - 1)]], dtype=np.float64)
    out = cv2.warpAffine(small, m, tuple(fr.dst_size), flags=cv2.INTER_LINEAR, borderMode=fr._border(),
                         borderValue=border_value)
    return fr._bars(out, border_value)
