"""The person laid over a plate, as compositors do it: a window's RGBA scaled back into the full frame
(premultiplied) and blended over the background. Generation writes its frames with these (`frame_writer`), and the
baselines of `edn eval` and the previews of `edn transfer` use them too, so they show a window exactly as
generation writes it. And the reverse: a real crop pulled off its plate, to be laid over other pictures. BGR(A)
below is OpenCV's order; RGB(A) works as well (the frame writer keeps its pictures so): only alpha's place, last,
matters."""

from __future__ import annotations

import cv2
import numpy as np

from .pose.framing import Framing

# Difference matting (`pull_from_plate`): a pixel no farther from the plate than BACKGROUND (the Euclidean distance
# of its 8-bit BGR levels: the plate's own noise and compression stay below it) is background, one FOREGROUND away
# the person, and between, partly each. Skin lies 70-220 from romp_sample2's white wall. A ramp up to the hand's
# median distance left half of each hand translucent: on 80 frames of a transfer (`scripts/bench_transfer_hands.py`'s
# kind, counted once by hand) the detector found 27 of 160 hands against this ramp's 44 (half the median: 38).
BACKGROUND, FOREGROUND = 12.0, 48.0
THIN, SOLID = 0.5 * 255, 0.9 * 255  # `blend_patch(clears=True)`: the frame's alpha a clear patch clears, and keeps
# `paste`: alpha below this (of 255) is the generator's haze, not the person. A sixth of a window's pixels held 1 of
# 255 (the 20-minute romp_sample2 run driven by another dancer): a faint rectangle in any compositor that levels alpha
# up (for a glow, a shadow). Cleared, the rectangle left to resample was 56% of the window instead of all of it.
ALPHA_FLOOR = 3
MATTE_TRUST = 8.0  # the segmentation matte gates that, fully where it is at least 1/8 (its soft edge is wide)


def paste(fr: Framing, window_rgba: np.ndarray, plate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The window's RGBA back in the full frame (transparent elsewhere), and that over the plate. Only the
    rectangle the person covers is resampled and blended: the rest is zeros, and the plate as it is.

    The window is resampled premultiplied (colour times alpha), as compositors do. Resampled straight, the
    person's edge took colour from the pixels beside it that alpha hides (the generator's colour there is
    whatever it learned nowhere to fix), and the window's own edge faded to black: a dark seam where the
    person, or an opaque retrieved frame, reaches it. The premultiplied colour is 8-bit, so the straight colour
    written where alpha is small is coarse (at alpha 8 of 255, within about 16 levels); multiplied by alpha
    again, as any compositor does, it is within a level. Alpha below ALPHA_FLOOR is cleared (`_floored`), and only
    the rectangle that holds the rest is resampled."""
    h, w = plate.shape[:2]
    rgba, comp = np.zeros((h, w, 4), np.uint8), plate.copy()
    window = premultiplied(_floored(window_rgba), np.uint8)
    drawn = _drawn(window)
    roi = fr.source_roi(drawn) if drawn is not None else None
    if roi is not None:
        x0, y0, x1, y1 = roi
        back = fr.back(window, cv2.INTER_LINEAR, roi=roi)
        # OpenCV on whole contiguous images: numpy's strided channel slices of a 1000-pixel window cost more
        rgba[y0:y1, x0:x1] = straight(back)
        clear = cv2.cvtColor(255 - cv2.extractChannel(back, 3), cv2.COLOR_GRAY2BGR)
        comp[y0:y1, x0:x1] = cv2.add(cv2.cvtColor(back, cv2.COLOR_BGRA2BGR),
                                     cv2.multiply(plate[y0:y1, x0:x1], clear, scale=1 / 255))
    return rgba, comp


def over(rgba: np.ndarray, background: np.ndarray) -> np.ndarray:
    """A BGRA uint8 image over a BGR background of the same size (straight alpha). OpenCV's blend, rounded:
    on a 1100x1100 window 6 ms, against 46 ms for the same sum in numpy."""
    a = rgba[..., 3].astype(np.float32) * (1.0 / 255.0)
    return cv2.blendLinear(cv2.cvtColor(rgba, cv2.COLOR_BGRA2BGR), background, a, 1.0 - a)


def pull_from_plate(bgra: np.ndarray, plate: np.ndarray) -> np.ndarray:
    """A crop of a real frame with its matte as alpha (BGRA uint8) pulled off the plate behind it (BGR uint8, the
    same size): alpha where the picture differs from the plate, within the matte, and the colour there unmixed from
    the plate (picture = alpha * colour + (1 - alpha) * plate, solved for colour), so that whatever it is laid over,
    no wall comes with it. Over its own plate it looks as before. Why: the segmentation matte is coarse; around a
    training hand (`hand_bank`) it held the wall between and around the fingers, and laid over the body (a hand
    across the chest, driven by another dancer) that wall showed as a pale, glassy halo."""
    image, back = bgra[..., :3].astype(np.float32), plate.astype(np.float32)
    alpha = np.clip((np.linalg.norm(image - back, axis=2) - BACKGROUND) / (FOREGROUND - BACKGROUND), 0.0, 1.0)
    alpha *= np.clip(bgra[..., 3].astype(np.float32) * (MATTE_TRUST / 255.0), 0.0, 1.0)
    unmixed = back + (image - back) / np.maximum(alpha, 1 / 255)[..., None]  # noise amplified where alpha hides it
    colour = np.where(alpha[..., None] > 0, unmixed, image)
    colour = np.clip(colour + 0.5, 0, 255).astype(np.uint8)
    return cv2.merge([*cv2.split(colour), (alpha * 255 + 0.5).astype(np.uint8)])


def feather_weights(size: int, margin: int | None = None) -> np.ndarray:
    """(size, size) float32: 1 inside, falling linearly to 0 at each edge over its outer `margin` pixels (default:
    an eighth), so a refined patch (a hand here, the Face GAN's face in `models.face`) has no seam where it meets
    the picture around it."""
    margin = margin or max(size // 8, 1)
    r = np.arange(size, dtype=np.float32)
    ramp = np.minimum(np.minimum(r, size - 1 - r) / margin, 1.0)
    return np.outer(ramp, ramp)


def blend_patch(rgba: np.ndarray, comp: np.ndarray, plate: np.ndarray, fr: Framing, patch: np.ndarray,
                over: bool = False, weights: np.ndarray | None = None, clears: bool = False) -> None:
    """Lay `patch` (BGRA uint8, straight alpha, at `fr`'s output size: a refined hand) into the full frame's
    `rgba` and its composite `comp` over `plate`, in place: in its place (the patch's alpha replaces the frame's),
    or `over` the frame (a layer above it: a training hand, `hand_bank`). Blended premultiplied, by `weights`
    (float32 in 0..1 at the patch's size: how much of the patch counts where; default: all of it, feathered at its
    edge), and the composite recomputed from the blended RGBA, so the two always agree. `clears`: where the patch
    is clear it also counts over the frame's thin parts (alpha below THIN, fading out by SOLID), never over its solid
    body: a refined hand clears the body's blur around it against the wall, but cuts no hole in the chest.
    In 0..255, on whole arrays of one shape: numpy's arithmetic on a channel slice, or a (h, w, 1) factor
    broadcast over four channels, steps three or four values at a time (a frame's four patches took 8 ms)."""
    drawn = _drawn(patch) if over else None  # a layer over the frame changes it only where the layer is drawn
    roi = None if over and drawn is None else fr.source_roi(drawn)  # a patch in its place, all over its box
    if roi is None:
        return
    x0, y0, x1, y1 = roi
    new = fr.back(premultiplied(patch), cv2.INTER_LINEAR, roi=roi)
    w = fr.back(feather_weights(patch.shape[0]) if weights is None else weights, cv2.INTER_LINEAR, roi=roi)
    mixed = premultiplied(rgba[y0:y1, x0:x1])
    if over:  # the frame under the patch shows through what the patch leaves
        keep = 1.0 - w * cv2.extractChannel(new, 3) * (1 / 255)
        mixed = mixed * cv2.merge([keep] * 4) + new * cv2.merge([w] * 4)
    else:  # the patch replaces the frame, but for its feathered edge
        if clears:
            edge = fr.back(feather_weights(patch.shape[0]), cv2.INTER_LINEAR, roi=roi)
            clear = 1.0 - cv2.extractChannel(new, 3) * (1 / 255)
            thin = np.clip((SOLID - cv2.extractChannel(mixed, 3)) * (1 / (SOLID - THIN)), 0.0, 1.0)
            w = np.maximum(w, edge * clear * thin)
        mixed += (new - mixed) * cv2.merge([w] * 4)
    colour, alpha = cv2.cvtColor(mixed, cv2.COLOR_BGRA2BGR), cv2.extractChannel(mixed, 3)
    alpha3 = cv2.merge([alpha] * 3)
    unmixed = np.divide(colour, alpha3, out=np.zeros_like(colour), where=alpha3 > 0.0255)  # 1e-4 of opaque
    rgba[y0:y1, x0:x1] = np.clip(cv2.merge([unmixed * 255, alpha]) + 0.5, 0, 255)
    comp[y0:y1, x0:x1] = np.clip(colour + (1.0 - alpha3 * (1 / 255)) * plate[y0:y1, x0:x1] + 0.5, 0, 255)


def _floored(bgra: np.ndarray) -> np.ndarray:
    """`bgra` with alpha below ALPHA_FLOOR cleared (a copy)."""
    alpha = cv2.threshold(cv2.extractChannel(bgra, 3), ALPHA_FLOOR - 1, 255, cv2.THRESH_TOZERO)[1]
    return cv2.merge([*cv2.split(bgra)[:3], alpha])


def _drawn(bgra: np.ndarray) -> tuple[int, int, int, int] | None:
    """The rectangle (x0, y0, x1, y1) of `bgra`'s pixels with any alpha; None where it has none."""
    x, y, w, h = cv2.boundingRect(cv2.extractChannel(bgra, 3))
    return (x, y, x + w, y + h) if w and h else None


def premultiplied(bgra: np.ndarray, dtype=np.float32) -> np.ndarray:
    """BGRA uint8 -> colour times alpha / 255, and alpha, in 0..255 as `dtype` (uint8: rounded)."""
    image = bgra.astype(dtype, copy=False)
    return cv2.multiply(image, _colour_by_alpha(cv2.extractChannel(image, 3)), scale=1 / 255)


def straight(bgra: np.ndarray) -> np.ndarray:
    """Premultiplied BGRA uint8 -> straight, in one division: the colour over alpha (0 where alpha is 0), alpha kept
    (255 * alpha / 255)."""
    return cv2.divide(bgra, _colour_by_alpha(cv2.extractChannel(bgra, 3)), scale=255)


def _colour_by_alpha(alpha: np.ndarray) -> np.ndarray:
    """(h, w, 4): `alpha` for the three colour channels and 255 for alpha's own, so that one OpenCV multiply by it
    (scaled by 1/255) premultiplies the colour, or one division (scaled by 255) straightens it, alpha unchanged."""
    return cv2.merge([alpha, alpha, alpha, np.full_like(alpha, 255)])
