"""The networks, profiles, losses and VGG19 loading (structure and numbers; learning is tested in test_train)."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from torch import nn

from edn_engine.errors import EdnError
from edn_engine.models.config import PROFILES, ModelConfig, default_face_size, get_profile
from edn_engine.models.discriminator import build_discriminator, disc_input_channels
from edn_engine.models.face import (build_face_discriminator, build_face_generator, crop_faces, face_origins,
                                    paste_faces)
from edn_engine.models.generator import build_generator
from edn_engine.models.losses import (GANLoss, VGGLoss, discriminator_losses, face_generator_losses,
                                      feature_matching_loss, generator_losses, limb_mask, masked_l1)
from edn_engine.models.vgg import VGG19, VGG19_FILE, find_vgg19, load_vgg19

# torchvision's vgg19 `features` indices that hold convolutions: the key names its weight file uses.
TORCHVISION_VGG19_CONVS = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def meta_build(fn, cfg):
    """Build on the meta device: parameter counts of the 180M-parameter paper generator without allocating it."""
    with torch.device("meta"):
        return fn(cfg)


def pix2pixhd_global_params(in_nc: int, out_nc: int, ngf: int, n_down: int, n_blocks: int) -> int:
    """pix2pixHD's GlobalGenerator size, counted from its published layer list (7x7 stem, 3x3 strided convs,
    residual blocks of two 3x3 convs, 3x3 transposed convs, 7x7 output; all with bias; non-affine norm)."""
    conv = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731
    total = conv(in_nc, ngf, 7)
    for i in range(n_down):
        total += conv(ngf * 2**i, ngf * 2 ** (i + 1), 3)
    total += n_blocks * 2 * conv(ngf * 2**n_down, ngf * 2**n_down, 3)
    for i in range(n_down, 0, -1):
        total += conv(ngf * 2**i, ngf * 2 ** (i - 1), 3)
    return total + conv(ngf, out_nc, 7)


# ----------------------------------------------------------------------------------------------------------
# profiles
# ----------------------------------------------------------------------------------------------------------
def test_profiles_round_trip_through_json_and_refuse_bad_settings():
    assert set(PROFILES) == {"paper-global", "paper-local", "cpu"}
    for name in PROFILES:
        cfg = get_profile(name)
        again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert again == cfg
    g = get_profile("paper-global")
    assert (g.width, g.height, g.ngf, g.n_downsample, g.n_blocks, g.num_d, g.ndf, g.n_layers_d) == \
        (512, 256, 64, 4, 9, 2, 64, 3)
    loc = get_profile("paper-local")
    assert (loc.width, loc.height, loc.n_local_enhancers, loc.num_d, loc.face_size) == (1024, 512, 1, 3, 128)
    assert get_profile("cpu").upsample == "resize"
    # overrides apply to a copy; a new size brings its own face crop size
    small = get_profile("paper-global", width=256, height=128)
    assert small.face_size == default_face_size(256, 128) == 32 and PROFILES["paper-global"].width == 512
    with pytest.raises(EdnError, match="unknown model profile"):
        get_profile("gpu-huge")
    with pytest.raises(EdnError, match="unknown model setting 'colour'; known settings: width, height"):
        get_profile("cpu", colour="red")
    with pytest.raises(EdnError, match="multiple of 16"):
        get_profile("cpu", width=250, height=256)
    with pytest.raises(EdnError, match="does not fit"):
        get_profile("cpu", width=32, height=32, face_size=48)
    assert get_profile("cpu", width=32, height=32, face=False).width == 32
    with pytest.raises(EdnError, match="must be a multiple of 16, at least 32 a side"):
        get_profile("cpu", width=16, height=64, face=False)  # the bottleneck would be one pixel wide
    with pytest.raises(EdnError, match="face_size 8 must be a multiple of 8, at least 16"):
        get_profile("cpu", face_size=8)  # the face generator's bottleneck too
    with pytest.raises(EdnError, match="upsample"):
        get_profile("cpu", upsample="pixelshuffle")
    with pytest.raises(EdnError, match="face_lr must be positive, not 0.0"):
        get_profile("cpu", face_lr=0)
    old_run = {k: v for k, v in get_profile("cpu").to_dict().items() if k != "face_lr"}  # saved before face_lr
    assert ModelConfig.from_dict(old_run).face_lr == 1.0 and get_profile("cpu").face_lr == 4.0
    with pytest.raises(EdnError, match="unknown fields"):
        ModelConfig.from_dict({**get_profile("cpu").to_dict(), "extra": 1})


# ----------------------------------------------------------------------------------------------------------
# generator
# ----------------------------------------------------------------------------------------------------------
def test_paper_global_generator_has_pix2pixhd_size():
    """ngf 64, 4 downsamplings, 9 blocks: pix2pixHD's global G is ~182M parameters (its released checkpoints are
    ~730 MB of fp32). Inputs: stick figure + previous frame (6), outputs: RGB + matte (4)."""
    cfg = get_profile("paper-global")
    g = meta_build(build_generator, cfg)
    assert n_params(g) == pix2pixhd_global_params(6, 4, 64, 4, 9)
    assert 175e6 < n_params(g) < 190e6
    # the paper's local generator adds a 32-channel full-resolution branch (~0.26M) around the same global one
    loc = meta_build(build_generator, get_profile("paper-local"))
    assert 0.2e6 < n_params(loc) - n_params(g) < 0.4e6


def test_profile_sizes_are_ordered():
    """The cpu profile is a small network: its G under 1/10 of the paper's, its discriminator smaller too."""
    counts = {name: (n_params(meta_build(build_generator, get_profile(name))),
                     n_params(meta_build(build_discriminator, get_profile(name))),
                     n_params(meta_build(build_face_generator, get_profile(name))))
              for name in PROFILES}
    assert counts["cpu"][0] < counts["paper-global"][0] / 10
    assert counts["cpu"][1] < counts["paper-global"][1] < counts["paper-local"][1]
    assert 2e6 < counts["cpu"][0] < 20e6  # large enough to hold a person's appearance
    assert all(c[2] > 0 for c in counts.values())


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_generator_outputs_rgb_and_matte(name):
    torch.manual_seed(0)
    cfg = get_profile(name, width=64 * (2 if name == "paper-local" else 1), height=64, ngf=8, n_blocks=2)
    g = build_generator(cfg)
    label = torch.rand(2, 3, cfg.height, cfg.width) * 2 - 1
    rgb, alpha = g(label, None)
    assert rgb.shape == (2, 3, cfg.height, cfg.width) and alpha.shape == (2, 1, cfg.height, cfg.width)
    assert rgb.abs().max() <= 1 and 0 <= alpha.min() and alpha.max() <= 1
    # the previous frame is an input: it changes the output (zeros stand for "no previous frame")
    rgb_prev, _ = g(label, torch.ones_like(label))
    assert not torch.allclose(rgb_prev, rgb)
    assert torch.allclose(g(label, torch.zeros_like(label))[0], rgb)


def test_non_temporal_generator_ignores_prev_and_no_alpha_head():
    cfg = get_profile("cpu", width=64, height=64, temporal=False, alpha=False)
    g = build_generator(cfg)
    assert g.net.stem[1].in_channels == 3 and g.net.head[1].out_channels == 3
    label = torch.rand(1, 3, 64, 64) * 2 - 1
    rgb, alpha = g(label, torch.rand(1, 3, 64, 64))
    assert alpha is None and torch.equal(rgb, g(label, None)[0])


def test_local_enhancer_runs_at_1024x512():
    """Structural: the paper-local layout at its real size, with tiny channels so the test is quick."""
    cfg = get_profile("paper-local", ngf=4, n_blocks=1, n_blocks_local=1)
    g = build_generator(cfg)
    with torch.no_grad():
        rgb, alpha = g(torch.zeros(1, 3, 512, 1024), torch.zeros(1, 3, 512, 1024))
    assert rgb.shape == (1, 3, 512, 1024) and alpha.shape == (1, 1, 512, 1024)
    # the nested global generator sees the half-resolution input and its output layer is dropped
    assert g.net.global_net.head is None


# ----------------------------------------------------------------------------------------------------------
# discriminators and the face stage
# ----------------------------------------------------------------------------------------------------------
def test_multiscale_discriminator_returns_features_per_scale():
    cfg = get_profile("paper-global", width=128, height=64, ndf=8)
    assert disc_input_channels(cfg) == 12
    assert disc_input_channels(get_profile("cpu", temporal=False)) == 6
    d = build_discriminator(cfg)
    out = d(torch.rand(2, 12, 64, 128))
    assert len(out) == cfg.num_d == 2
    for scale in out:
        assert len(scale) == cfg.n_layers_d + 2
        assert [f.shape[1] for f in scale] == [8, 16, 32, 64, 1]
    # scale 1 sees the input at half resolution
    assert out[1][0].shape[-1] < out[0][0].shape[-1]
    assert len(build_discriminator(get_profile("paper-local", ndf=4))(torch.rand(1, 12, 64, 128))) == 3


def test_face_networks_and_crops():
    cfg = get_profile("cpu")
    fs = cfg.face_size
    fg, fd = build_face_generator(cfg), build_face_discriminator(cfg)
    label_c, face_c = torch.rand(2, 3, fs, fs) * 2 - 1, torch.rand(2, 3, fs, fs) * 2 - 1
    res = fg(label_c, face_c)
    assert res.shape == (2, 3, fs, fs) and res.abs().max() <= 1
    refined = fg.refine(label_c, face_c)
    assert torch.allclose(refined, (face_c + res).clamp(-1, 1))
    preds = fd(torch.cat([label_c, refined], 1))
    assert len(preds) == 1 and preds[0][-1].shape[1] == 1
    # crops stay inside the frame
    img = torch.arange(2 * 3 * 256 * 256, dtype=torch.float32).reshape(2, 3, 256, 256)
    origins = face_origins(torch.tensor([[10.0, 128.0], [250.0, 5.0]]), fs, 256, 256)
    assert origins.tolist() == [[0, 96], [256 - fs, 0]]
    crops = crop_faces(img, origins, fs)
    assert torch.equal(crops[1], img[1, :, 0:fs, 256 - fs:256])
    assert torch.equal(paste_faces(img, crops, origins), img)  # a crop pasted back restores the frame
    # a pasted face is whole inside its box and fades into the frame over the box's outer eighth (no seam)
    pasted = paste_faces(torch.zeros_like(img), torch.ones(2, 3, fs, fs), origins)[0, 0, 96:96 + fs, 0:fs]
    m = fs // 8
    assert torch.equal(pasted[m:-m, m:-m], torch.ones(fs - 2 * m, fs - 2 * m))
    assert torch.allclose(pasted[fs // 2, :m + 1], torch.arange(m + 1) / m)  # the ramp at the left edge
    edge = torch.cat([pasted[0], pasted[-1], pasted[:, 0], pasted[:, -1]])
    assert edge.abs().max() == 0  # the box's outermost pixels are the frame's own
    assert pasted.diff(dim=1).abs().max() <= 1 / m + 1e-6  # no step larger than one ramp step


def test_all_networks_run_under_bf16_autocast():
    cfg = get_profile("cpu", width=64, height=64)
    g, d, fg, fd = (build_generator(cfg), build_discriminator(cfg), build_face_generator(cfg),
                    build_face_discriminator(cfg))
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rgb, alpha = g(x, x)
        feats = d(torch.cat([x, x, rgb, rgb], 1))
        res = fg(x, rgb)
        ffeats = fd(torch.cat([x, res], 1))
        loss = GANLoss()(feats, True) + GANLoss()(ffeats, False) + alpha.float().mean()
    assert rgb.dtype == torch.bfloat16 and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in g.parameters() if p.grad is not None)
    # channels_last (used for bf16 inference) computes the same frames
    with torch.no_grad():
        plain = g(x, x)[0]
        g.to(memory_format=torch.channels_last)
        cl = g(x.contiguous(memory_format=torch.channels_last), x)[0]
    assert torch.allclose(plain, cl, atol=1e-4)


# ----------------------------------------------------------------------------------------------------------
# losses
# ----------------------------------------------------------------------------------------------------------
def test_gan_and_feature_matching_losses():
    gan = GANLoss()
    ones = [[torch.rand(1, 4, 8, 8), torch.ones(1, 1, 5, 5)], [torch.rand(1, 4, 4, 4), torch.ones(1, 1, 3, 3)]]
    assert gan(ones, True).item() == 0 and gan(ones, False).item() == pytest.approx(2.0)  # summed over scales
    feats = [[torch.rand(1, 4, 8, 8), torch.rand(1, 8, 4, 4), torch.rand(1, 1, 3, 3)] for _ in range(2)]
    assert feature_matching_loss(feats, feats).item() == 0
    # one feature off by 1 everywhere: weight 4/(n_layers+1) with n_layers+2 = 3 features, 1/num_d with 2 scales
    shifted = [[f.clone() for f in s] for s in feats]
    shifted[1][0] += 1
    assert feature_matching_loss(shifted, feats).item() == pytest.approx(4 / 2 / 2)
    # the prediction map (last feature) is not matched; the real side carries no gradient
    shifted = [[f.clone().requires_grad_() for f in s] for s in feats]
    shifted[0][-1].data += 5
    loss = feature_matching_loss(feats, shifted)
    assert loss.item() == 0 and not loss.requires_grad


def test_limb_mask_and_masked_l1():
    label = -torch.ones(1, 3, 32, 32)
    label[:, 0, 16, 8:24] = 1.0  # a one-pixel red line
    m = limb_mask(label, 2)
    assert m[0, 0, 16, 8] == 1 and m[0, 0, 14, 16] == 1 and m[0, 0, 13, 16] == 0 and m[0, 0, 0, 0] == 0
    assert limb_mask(label, 0).sum() == 16
    fake, real = torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32)
    fake[:, :, 16, 8:24] = 1.0  # wrong only on the line: a full error there, whatever the line's size
    assert masked_l1(fake, real, limb_mask(label, 0)).item() == pytest.approx(48 / 49, rel=1e-6)
    assert masked_l1(fake, real, torch.zeros(1, 1, 32, 32)).item() == 0


def test_generator_and_discriminator_losses_combine_the_terms():
    torch.manual_seed(0)
    cfg = get_profile("cpu", width=64, height=64, perceptual="vgg19", lambda_l1=1.0)
    g, d = build_generator(cfg), build_discriminator(cfg)
    labels = [torch.rand(1, 3, 64, 64) * 2 - 1 for _ in range(2)]
    reals = [torch.rand(1, 3, 64, 64) * 2 - 1 for _ in range(2)]
    mattes = [(torch.rand(1, 1, 64, 64) > 0.5).float() for _ in range(2)]
    f0, a0 = g(labels[0], None)
    f1, a1 = g(labels[1], f0)
    gan, vgg = GANLoss(), VGGLoss(VGG19().eval().requires_grad_(False))
    d_fake, d_real = d(torch.cat(labels + [f0, f1], 1)), d(torch.cat(labels + reals, 1))
    terms = generator_losses(cfg, gan, d_fake, d_real, [f0, f1], reals, labels, [a0, a1], mattes, vgg)
    assert set(terms) == {"gan", "feat", "vgg", "l1", "person", "limb", "hand", "alpha", "total"}
    assert all(torch.isfinite(v) and v >= 0 for v in terms.values())
    assert terms["vgg"] > 0 and terms["person"] > 0 and terms["alpha"] > 0
    assert terms["total"].item() == pytest.approx(sum(v.item() for k, v in terms.items() if k != "total"),
                                                  rel=1e-5)
    terms["total"].backward()
    assert g.net.stem[1].weight.grad.abs().sum() > 0
    # without VGG weights its weight moves onto the plain L1 term
    off = get_profile("cpu", width=64, height=64, perceptual="none", lambda_l1=1.0)
    terms_off = generator_losses(off, gan, d_fake, d_real, [f0, f1], reals, labels, [a0, a1], mattes, None)
    assert terms_off["vgg"].item() == 0
    assert terms_off["l1"].item() == pytest.approx(terms["l1"].item() * (1.0 + cfg.lambda_vgg), rel=1e-5)
    d_terms = discriminator_losses(gan, d(torch.cat(labels + [f0.detach(), f1.detach()], 1)), d_real)
    assert d_terms["total"].item() == pytest.approx(0.5 * (d_terms["d_fake"] + d_terms["d_real"]).item())
    fs = cfg.face_size
    fc, rc = torch.rand(1, 3, fs, fs), torch.rand(1, 3, fs, fs)
    fd = build_face_discriminator(cfg)
    face = face_generator_losses(cfg, gan, fd(torch.cat([fc, fc], 1)), fd(torch.cat([fc, rc], 1)), fc, rc, vgg)
    assert all(torch.isfinite(v) for v in face.values()) and face["vgg"] > 0


def test_hand_term_weighs_the_hands_as_much_as_the_person():
    """An error confined to the hands, 1% of the frame, costs lambda_hand x its full size: it cannot vanish."""
    cfg = get_profile("cpu", width=64, height=64)
    assert cfg.lambda_hand > 0
    gan, d = GANLoss(), build_discriminator(cfg)
    label = torch.full((1, 3, 64, 64), -1.0)
    real = torch.zeros(1, 3, 64, 64)
    fake = real.clone()
    hands = torch.zeros(1, 1, 64, 64)
    hands[..., 30:36, 40:46] = 1.0
    fake[..., 30:36, 40:46] = 0.5  # wrong only on the hand
    feats = d(torch.cat([label, label, fake, fake], 1))
    with_hands = generator_losses(cfg, gan, feats, feats, [fake], [real], [label], [None], [None], None,
                                  hands=[hands])
    assert with_hands["hand"].item() == pytest.approx(cfg.lambda_hand * 0.5 * 108 / 109, rel=1e-5)
    without = generator_losses(cfg, gan, feats, feats, [fake], [real], [label], [None], [None], None)
    assert without["hand"].item() == 0
    assert with_hands["total"].item() == pytest.approx(without["total"].item() + with_hands["hand"].item(),
                                                       rel=1e-5)
    assert get_profile("paper-global").lambda_hand == 0  # the paper's profiles keep the paper's losses


def test_vgg_loss_is_zero_on_identical_images():
    vgg = VGGLoss(VGG19().eval().requires_grad_(False))
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert vgg(x, x).item() == 0
    assert vgg(x, -x).item() > 0


# ----------------------------------------------------------------------------------------------------------
# VGG19 weights
# ----------------------------------------------------------------------------------------------------------
def _torchvision_style_file(path):
    """Random VGG19 weights saved under torchvision's key names, with classifier keys as its file has."""
    torch.manual_seed(1)
    state = {}
    for i, (cin, cout) in zip(TORCHVISION_VGG19_CONVS, [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256)] +
                              [(256, 256)] * 3 + [(256, 512)] + [(512, 512)] * 7):
        state[f"features.{i}.weight"] = torch.randn(cout, cin, 3, 3)
        state[f"features.{i}.bias"] = torch.randn(cout)
    state["classifier.0.weight"] = torch.randn(8, 8)
    torch.save(state, path)
    return state


def test_vgg19_loads_torchvision_format_weights(odd_dir, monkeypatch):
    assert list(VGG19().state_dict()) == [f"features.{i}.{p}" for i in TORCHVISION_VGG19_CONVS
                                          for p in ("weight", "bias")]
    path = odd_dir / "vgg19 weights.pth"
    state = _torchvision_style_file(path)
    vgg = load_vgg19(path, allow_download=False)
    assert torch.equal(vgg.features[34].bias, state["features.34.bias"])
    assert not vgg.training and not any(p.requires_grad for p in vgg.parameters())
    assert len(vgg(torch.zeros(1, 3, 32, 32))) == 5
    # without a path, the torch hub cache is where it looks
    hub = odd_dir / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    (hub / "checkpoints" / VGG19_FILE).write_bytes(path.read_bytes())
    assert find_vgg19(None, allow_download=False) == hub / "checkpoints" / VGG19_FILE
    assert torch.equal(load_vgg19(allow_download=False).features[0].weight, state["features.0.weight"])


class _Payload:
    def __reduce__(self):
        return (print, ("code ran while loading",))


def test_vgg19_refuses_foreign_files_and_explains_missing_weights(odd_dir, monkeypatch, capsys):
    evil = odd_dir / "evil.pth"
    evil.write_bytes(pickle.dumps({"features.0.weight": _Payload()}, protocol=2))
    with pytest.raises(EdnError, match="safely") as err:
        load_vgg19(evil, allow_download=False)
    assert "evil.pth" in str(err.value) and "code ran" not in capsys.readouterr().out
    truncated = odd_dir / "cut.pth"
    _torchvision_style_file(odd_dir / "full.pth")
    truncated.write_bytes((odd_dir / "full.pth").read_bytes()[:5000])
    with pytest.raises(EdnError, match="safely"):
        load_vgg19(truncated, allow_download=False)
    wrong = odd_dir / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, wrong)
    with pytest.raises(EdnError, match="layout"):
        load_vgg19(wrong, allow_download=False)
    with pytest.raises(EdnError, match="not found"):
        load_vgg19(odd_dir / "nowhere.pth")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(odd_dir / "empty hub"))
    with pytest.raises(EdnError) as err:
        load_vgg19(allow_download=False)
    msg = str(err.value)
    assert "--perceptual none" in msg and str(odd_dir / "empty hub" / "checkpoints" / VGG19_FILE) in msg
