"""VGG19 feature extractor for the perceptual loss, defined here so the engine needs no torchvision.

Its `state_dict` keys are torchvision's (`features.N.weight/bias`), so torchvision's ImageNet file
`vgg19-dcbb9e9d.pth` loads as is (its classifier keys are ignored). The file is looked for at a given path,
then in the torch hub cache, and downloaded only when allowed and the network answers.
"""

from __future__ import annotations

import socket
from pathlib import Path

import torch
from torch import nn

from ..errors import EdnError

VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILE}"
# torchvision's configuration "E": channels of each 3x3 convolution, "M" = 2x2 max pooling.
_VGG19_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"]
# End indices (exclusive) in `features` of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1: pix2pixHD's taps.
TAPS = (2, 7, 12, 21, 30)


class VGG19(nn.Module):
    """`features` exactly as torchvision's vgg19 (37 modules); `forward` returns the activations at `TAPS[:n]`."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch = 3
        for v in _VGG19_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(ch, int(v), 3, padding=1), nn.ReLU(inplace=True)]
                ch = int(v)
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, n_taps: int = len(TAPS)) -> list[torch.Tensor]:
        """x: ImageNet-normalized images. Runs only as deep as the last tap needed."""
        out, start = [], 0
        for end in TAPS[:n_taps]:
            for layer in self.features[start:end]:
                x = layer(x)
            out.append(x)
            start = end
        return out


def _hub_file() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


def _online(host: str = "download.pytorch.org", timeout: float = 5.0) -> bool:
    """A quick reachability check, so an offline machine fails in seconds instead of hanging in a download."""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    """The `features.*` tensors of a torchvision-format file; anything else is refused, naming the file."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle with code, truncated file, not a torch file at all
        raise EdnError(f"not a VGG19 weight file torch can load safely ({type(exc).__name__}); "
                       f"expected torchvision's {VGG19_FILE}", path=path) from exc
    if not isinstance(state, dict):
        raise EdnError(f"not a VGG19 state dict; expected torchvision's {VGG19_FILE}", path=path)
    feats = {k: v for k, v in state.items() if isinstance(k, str) and k.startswith("features.")}
    expected = VGG19().state_dict()
    missing = [k for k in expected if k not in feats]
    wrong = [k for k in expected if k in feats and tuple(feats[k].shape) != tuple(expected[k].shape)]
    if missing or wrong:
        raise EdnError(f"VGG19 weights do not match torchvision's layout (missing {missing[:3]}, "
                       f"wrong shape {wrong[:3]})", path=path)
    return feats


def find_vgg19(path: str | Path | None = None, allow_download: bool = True) -> Path:
    """Where the weights are: the given path, else the torch hub cache, else a fresh download into the cache."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise EdnError("VGG19 weight file not found", path=p)
        return p
    cached = _hub_file()
    if cached.is_file():
        return cached
    if allow_download and _online():
        cached.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(VGG19_URL, str(cached), progress=False)  # temp file, then rename
            return cached
        except Exception:  # network dropped, proxy refused, disk full: fall through to the clear message
            pass
    raise EdnError(f"VGG19 weights for the perceptual loss are not available and could not be downloaded. "
                   f"Put torchvision's {VGG19_FILE} ({VGG19_URL}) at {cached}, or train with "
                   f"`--perceptual none` (an L1 loss replaces the perceptual loss)")


def load_vgg19(path: str | Path | None = None, allow_download: bool = True) -> VGG19:
    """A frozen VGG19 in eval mode with ImageNet weights (see `find_vgg19` for where they come from)."""
    file = find_vgg19(path, allow_download)
    vgg = VGG19()
    vgg.load_state_dict(_read_weights(file))
    vgg.eval()
    for p in vgg.parameters():
        p.requires_grad_(False)
    return vgg
