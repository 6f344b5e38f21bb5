"""How a source frame maps into an output frame of another size: letterbox (fit, pad) or crop (fill, cut).

One `Framing` is recorded in each dataset and reused at generation, so poses and pixels always map the same
way. It is a uniform scale plus an offset: out = src * scale + offset.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np


@dataclasses.dataclass(frozen=True)
class Framing:
    src_size: tuple[int, int]  # (width, height) of the source
    dst_size: tuple[int, int]  # (width, height) of the output
    mode: str = "letterbox"  # "letterbox": whole frame visible, padded; "crop": output filled, centre kept

    def __post_init__(self) -> None:
        if self.mode not in ("letterbox", "crop"):
            raise ValueError(f"framing mode must be 'letterbox' or 'crop', not {self.mode!r}")

    @property
    def scale(self) -> float:
        sw, sh = self.src_size
        dw, dh = self.dst_size
        fit = min(dw / sw, dh / sh) if self.mode == "letterbox" else max(dw / sw, dh / sh)
        return float(fit)

    @property
    def offset(self) -> tuple[float, float]:
        sw, sh = self.src_size
        dw, dh = self.dst_size
        s = self.scale
        return ((dw - sw * s) / 2.0, (dh - sh * s) / 2.0)

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
        s = self.scale
        ox, oy = self.offset
        m = np.array([[s, 0, ox], [0, s, oy]], dtype=np.float64)
        if s > 1 and interpolation == cv2.INTER_AREA:
            interpolation = cv2.INTER_LINEAR
        return cv2.warpAffine(img, m, tuple(self.dst_size), flags=interpolation,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)

    def to_dict(self) -> dict:
        return {"src_size": list(self.src_size), "dst_size": list(self.dst_size), "mode": self.mode}

    @classmethod
    def from_dict(cls, d: dict) -> "Framing":
        return cls(tuple(d["src_size"]), tuple(d["dst_size"]), d.get("mode", "letterbox"))
