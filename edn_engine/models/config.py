"""Model profiles: every size, switch and loss weight of the networks in one JSON-safe dataclass.

A `ModelConfig` travels inside each checkpoint (`to_dict`/`from_dict`), so a run can always rebuild the exact
networks it was trained with. Profiles name the three supported set-ups; `get_profile` applies overrides.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..errors import EdnError

UPSAMPLE_MODES = ("transpose", "resize")
PERCEPTUAL_MODES = ("vgg19", "none")


def default_face_size(width: int, height: int) -> int:
    """The paper's 128 px face crop at 1024x512, scaled with the frame height (the person's scale), multiple of 8."""
    return max(32, int(round(128 * height / 512 / 8)) * 8)


def trainable_side(side: int, factor: int) -> bool:
    """A side the generator can halve down to its bottleneck: a multiple of `factor`, at least two bottleneck
    pixels (the residual blocks' reflection padding and instance norm need two; one pixel crashed the first step)."""
    return side % factor == 0 and side >= 2 * factor


@dataclass
class ModelConfig:
    # --- frames ---
    width: int = 512  # training width in pixels
    height: int = 256  # training height in pixels
    label_nc: int = 3  # channels of the conditioning input: the stick figure RGB in [-1, 1]
    # --- body generator (pix2pixHD GlobalGenerator, optionally with one LocalEnhancer) ---
    ngf: int = 64  # channels of the global generator's first layer (doubled at each downsampling)
    max_channels: int = 1024  # cap on the global generator's channels (pix2pixHD: none, 64 * 2**4 = 1024)
    n_downsample: int = 4  # stride-2 downsamplings in the global generator
    n_blocks: int = 9  # residual blocks at the global generator's bottleneck
    n_local_enhancers: int = 0  # 0, or 1: a LocalEnhancer doubles the resolution (pix2pixHD "local")
    n_blocks_local: int = 3  # residual blocks in the local enhancer (pix2pixHD: 3)
    upsample: str = "transpose"  # "transpose" (pix2pixHD) or "resize" (nearest upsample + conv: no checkerboard)
    skips: bool = False  # additive encoder->decoder skips below full resolution (U-Net style; not in pix2pixHD)
    skip_finest: int = 1  # the body generator's finest skip, in halvings of its global generator's input (1: at 1/2;
    #                       n_downsample or more: none); the Face GAN keeps its skips from 1/2
    norm: str = "instance"  # normalization layer; pix2pixHD uses non-affine instance norm
    temporal: bool = True  # generator also takes its previous output (3 channels); D judges consecutive pairs
    alpha: bool = True  # generator also predicts the person's matte (sigmoid), so frames come out RGBA
    # --- discriminator (multi-scale PatchGAN) ---
    ndf: int = 64  # channels of each discriminator's first layer
    n_layers_d: int = 3  # strided layers per PatchGAN
    num_d: int = 2  # discriminator scales (input halved between scales)
    # --- face GAN (the paper's second stage: a residual on the body generator's face crop) ---
    face: bool = True  # train/run the face stage
    face_size: int = 64  # face crop side in pixels at this training size (128 at 1024x512)
    face_ngf: int = 32  # channels of the face generator's first layer
    face_n_downsample: int = 3  # downsamplings in the face generator
    face_n_blocks: int = 5  # residual blocks in the face generator
    face_ndf: int = 64  # channels of the face discriminator's first layer
    face_n_layers_d: int = 3  # strided layers of the face PatchGAN (a single scale)
    face_lr: float = 1.0  # face stage: learning rate as a multiple of the body stage's (pix2pixHD's 2e-4)
    hand_skip_finest: int = 1  # the hand refiner's finest skip, as skip_finest (halvings of its crop)
    hands: bool = True  # the face stage also trains the hand refiner (`models.hand`; person-over-plate runs only),
    #                     with the face networks' sizes, on each hand's box at the source's resolution
    # --- losses (generator side; the discriminator uses plain LSGAN) ---
    perceptual: str = "vgg19"  # "vgg19": VGG19 perceptual loss; "none": no VGG weights needed, L1 instead
    lambda_gan: float = 1.0  # LSGAN adversarial term
    lambda_feat: float = 10.0  # discriminator feature matching (pix2pixHD)
    lambda_vgg: float = 10.0  # VGG19 perceptual loss (pix2pixHD)
    lambda_l1: float = 0.0  # plain L1 to the real frame (with perceptual "none", lambda_vgg is added to it)
    lambda_person: float = 0.0  # extra L1 weight inside the real matte (the person matters more than the room)
    lambda_limb: float = 0.0  # extra L1 weight near the stick figure's lines (thin arms, hands, face)
    limb_radius: int = 0  # dilation of the stick figure's lines, in pixels, for the limb weight
    lambda_hand: float = 0.0  # extra L1 weight on the hands (discs around their keypoints, `pose.hands`)
    lambda_alpha: float = 10.0  # the predicted matte's loss against the dataset's (binary cross-entropy)
    lambda_face_gan: float = 1.0  # face stage: LSGAN term of the face discriminator
    lambda_face_feat: float = 10.0  # face stage: face discriminator feature matching
    lambda_face_vgg: float = 10.0  # face stage: VGG19 loss on the face crop
    lambda_face_l1: float = 0.0  # face stage: L1 on the face crop (with perceptual "none", lambda_face_vgg added)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def gen_input_channels(self) -> int:
        """Stick figure, plus the previous generated frame when temporal."""
        return self.label_nc + (3 if self.temporal else 0)

    @property
    def gen_output_channels(self) -> int:
        """RGB, plus one matte channel when `alpha`."""
        return 3 + (1 if self.alpha else 0)

    @property
    def size_factor(self) -> int:
        """Width and height must be multiples of this: the generator halves the frame this many times."""
        return 2 ** (self.n_downsample + self.n_local_enhancers)

    def validate(self) -> None:
        """Refuse values of the wrong type or range and combinations the networks cannot build, naming the field."""
        for f in dataclasses.fields(self):
            setattr(self, f.name, check_setting(f.name, getattr(self, f.name), f.type))
        if self.upsample not in UPSAMPLE_MODES:
            raise EdnError(f"model upsample must be one of {UPSAMPLE_MODES}, not {self.upsample!r}")
        if self.perceptual not in PERCEPTUAL_MODES:
            raise EdnError(f"perceptual loss must be one of {PERCEPTUAL_MODES}, not {self.perceptual!r}")
        if self.norm != "instance":
            raise EdnError(f"only instance norm is supported, not {self.norm!r}")
        if self.label_nc != 3:
            raise EdnError(f"model label_nc must be 3 (the stick figure's RGB), not {self.label_nc}")
        if self.n_local_enhancers not in (0, 1):
            raise EdnError(f"n_local_enhancers must be 0 or 1, not {self.n_local_enhancers}")
        for name in ("ngf", "ndf", "n_layers_d", "num_d", "face_ngf", "face_ndf", "face_n_layers_d", "max_channels"):
            if getattr(self, name) < 1:
                raise EdnError(f"model {name} must be at least 1, not {getattr(self, name)}")
        if not self.face_lr > 0:
            raise EdnError(f"model face_lr must be positive, not {self.face_lr}")
        for name in ("skip_finest", "hand_skip_finest"):
            if (value := getattr(self, name)) < 1:
                raise EdnError(f"model {name} must be at least 1 (no skip at full resolution), not {value}")
        for name in ("n_downsample", "n_blocks", "n_blocks_local", "face_n_downsample", "face_n_blocks",
                     "limb_radius", *(f.name for f in dataclasses.fields(self) if f.name.startswith("lambda_"))):
            if getattr(self, name) < 0:
                raise EdnError(f"model {name} must not be negative, not {getattr(self, name)}")
        factor = self.size_factor
        if not trainable_side(self.width, factor) or not trainable_side(self.height, factor):
            raise EdnError(f"training size {self.width}x{self.height} must be a multiple of {factor}, at least "
                           f"{2 * factor} a side ({self.n_downsample} downsamplings, {self.n_local_enhancers} "
                           "local enhancers)")
        face_factor = 2 ** self.face_n_downsample
        if self.face and not trainable_side(self.face_size, face_factor):
            raise EdnError(f"face_size {self.face_size} must be a multiple of {face_factor}, "
                           f"at least {2 * face_factor}")
        if self.face and self.face_size > min(self.width, self.height):
            raise EdnError(f"face_size {self.face_size} does not fit in {self.width}x{self.height} frames")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        """Rebuild from a checkpoint; unknown keys mean a foreign or newer file and are refused."""
        if not isinstance(data, dict):
            raise EdnError("model config in checkpoint is not a mapping")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise EdnError(f"model config has unknown fields {unknown} (written by a newer EDN?)")
        return cls(**data)


_KINDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def check_setting(name: str, value, kind: str | None = None):
    """`value` for model setting `name` if it has the field's type (ints pass as floats, made float); else an
    EdnError naming the field, the expected type and the value (`edn train --set ngf=abc`)."""
    kinds = {f.name: f.type for f in dataclasses.fields(ModelConfig)}
    if name not in kinds:
        raise EdnError(f"unknown model setting {name!r}; known settings: {', '.join(kinds)}")
    kind = kind or kinds[name]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = {"int": number and isinstance(value, int), "float": number and math.isfinite(value),
          "bool": isinstance(value, bool), "str": isinstance(value, str)}[kind]
    if not ok:
        raise EdnError(f"model setting {name} must be {_KINDS[kind]}, not {value!r}")
    return float(value) if kind == "float" else value


_PAPER_GLOBAL = ModelConfig(width=512, height=256, face_size=default_face_size(512, 256))

PROFILES: dict[str, ModelConfig] = {
    # pix2pixHD "global" as used by the paper's first stage: 512x256, 2 discriminators.
    "paper-global": _PAPER_GLOBAL,
    # pix2pixHD "local": the same global generator (ngf 64) inside a local enhancer (ngf 32) at 1024x512, 3 D.
    "paper-local": dataclasses.replace(_PAPER_GLOBAL, width=1024, height=512, n_local_enhancers=1, num_d=3,
                                       face_size=default_face_size(1024, 512)),
    # The default for machines without a GPU, sized by measurement (scripts/bench_train.py, bench_quality.py):
    # - thin layers at full resolution (16 channels; a channel there costs 256x one at 1/16 resolution) and the
    #   capacity at 1/16 resolution (6 residual blocks of 256 channels, as wide as pix2pixHD's at ngf 16);
    # - resize-convolution upsampling: no checkerboard; U-Net skips (at 1/4 and 1/8 resolution) carry where the
    #   thin limbs are to the decoder instead of through a 16x16 bottleneck. With a skip at 1/2 as well, the stick
    #   figure's colours came through as paint (thin green streaks along romp_sample2's dark trousers, where the
    #   legs' lines are green). scripts/bench_colour_leak.py, recolouring those lines: the composite there changed
    #   by 21.4 levels without that skip, 26.5-31.1 in four runs with it, 18.4 without the 1/4 one too (but body
    #   error 0.075); bench_quality (20 fp32 AVX2 minutes, one run each): person SSIM 0.788 against 0.787, body
    #   error 0.063 against 0.067, hands 19 against 18 of 71 (benchmarks/bench_quality_skip_finest_*.json);
    #   the hand refiner likewise (hand_skip_finest=2): its hands changed by 6.9 levels on a recoloured hand figure
    #   against 8.1 with the skip, and its face stage alone found 27.0 of 71 hands against 24.0 (six seeds each;
    #   benchmarks/bench_colour_leak_hands.json, face_stage_hand_skip_finest_2.json);
    # - no VGG19 by default: it needs a weight download and costs ~3/4 of a step at this size; its weight goes to
    #   L1, plus L1 normalized over the person's matte and over a band around the stick figure's lines, so a
    #   thin arm counts as much as the room behind it (`--perceptual vgg19` turns VGG back on);
    # - the matte's loss at 2x the default: after 20 fp32 minutes on romp_sample2 the person's alpha rested at 0.85
    #   with 10 (`edn eval`'s alpha_person: 15% of any other plate showed through them; over the training plate
    #   the colour made up for it), 0.92 with 20, 0.94 with 40 (benchmarks/bench_quality*.json); but with 40 the
    #   demo's short budget went to the matte rather than the face, and the detector read more of its frames
    #   facing the wrong way (facing_flipped; benchmarks/matte_loss_demo_sweep.json: 480 bf16
    #   steps, mean of two seeds: 0.75 of the frames with 40, 0.63 with 20, 0.56 with 10).
    # - the face stage at 4x the learning rate: a --minutes run gives it several hundred steps, and its faces are
    #   what tells the detector which way the person faces. The demo's face stage retrained alone over its body
    #   (scripts/bench_face_stage.py, benchmarks/bench_face_stage.json; 800 steps, fp32 AVX2, two seeds): pose
    #   error 0.17 / 0.18 at 4x against 0.25 / 0.22 at 1x, frames read facing the wrong way 0.13 / 0.13 against
    #   0.27 / 0.17.
    "cpu": ModelConfig(width=256, height=256, ngf=16, max_channels=256, n_downsample=4, n_blocks=6,
                       upsample="resize", skips=True, skip_finest=2, ndf=32, n_layers_d=3, num_d=2,
                       face_size=default_face_size(256, 256), face_ngf=16, face_n_blocks=3, face_ndf=32,
                       perceptual="none", lambda_l1=0.0, lambda_person=10.0, lambda_limb=10.0, limb_radius=4,
                       lambda_hand=10.0, lambda_alpha=20.0, face_lr=4.0, hand_skip_finest=2),
}


def get_profile(name: str, **overrides) -> ModelConfig:
    """A copy of profile `name` with `overrides` applied; face_size follows a changed size unless given."""
    base = _profile(name)
    for key, value in overrides.items():
        check_setting(key, value)
    if ("width" in overrides or "height" in overrides) and "face_size" not in overrides:
        overrides["face_size"] = default_face_size(overrides.get("width", base.width),
                                                   overrides.get("height", base.height))
    return dataclasses.replace(base, **overrides)


def check_trainable_size(profile: str, size: tuple[int, int], overrides: dict | None = None) -> None:
    """Refuse a training size that profile `profile` (with `overrides`) cannot train, before any long work: the
    generator halves the frame `size_factor` times over, and the Face GAN's crop must fit in the frame."""
    overrides = {k: check_setting(k, v) for k, v in (overrides or {}).items()}
    cfg = {**_profile(profile).to_dict(), **overrides}
    w, h = size
    levels = cfg["n_downsample"] + cfg["n_local_enhancers"]
    factor = 2 ** levels
    if not trainable_side(w, factor) or not trainable_side(h, factor):
        near = "x".join(str(max(2 * factor, round(v / factor) * factor)) for v in (w, h))
        raise EdnError(f"size {w}x{h} cannot be trained by profile {profile}: width and height must be multiples "
                       f"of {factor}, at least {2 * factor} (its generator halves the frame {levels} times); "
                       f"{near} would do")
    face = overrides.get("face_size", default_face_size(w, h))
    if cfg["face"] and face > min(w, h):
        raise EdnError(f"size {w}x{h} cannot be trained by profile {profile}: the Face GAN's {face}-pixel crop "
                       f"does not fit in the frame; use at least {face}x{face} (or --set face=false)")


def _profile(name: str) -> ModelConfig:
    if name not in PROFILES:
        raise EdnError(f"unknown model profile {name!r}; choose one of {sorted(PROFILES)}")
    return PROFILES[name]
