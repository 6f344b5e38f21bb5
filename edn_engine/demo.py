"""`edn demo`: the whole product on a synthetic target, needing nothing but the project.

Blender (the bpy module, Cycles on the CPU) renders a procedural mannequin dancing; its armature gives the
ground-truth pose, so nothing depends on a detector recognising a mannequin. EDN learns the mannequin from the
dance, then makes it perform a second, different motion whose ground truth Blender also renders, so the demo
ends with `edn eval`'s figures against ground truth. Stages (reused on a re-run when their inputs are unchanged):

    render_train   the training dance: frames, mattes, pose             OUT/scene_dance/
    render_test    the second motion, and its .blend                    OUT/scene_transfer/
    dataset        the dance at the training size                       OUT/dataset/
    train          the `cpu` profile for a few minutes                  OUT/run/
    generate       the mannequin performing the second motion: RGBA     OUT/generated/
                   and over the background plate                        OUT/generated/composite/
    evaluate       figures against the ground-truth render, contact sheet and side-by-side video
                                                                        OUT/report.json, contact_sheet.png,
                                                                        side_by_side.mp4, stick_figures/
    blend          a .blend whose Sequencer holds the source render, the stick figures and the results
                                                                        OUT/edn_demo.blend

Blender runs in a subprocess (`python -m edn_demo.scene`, the package installed beside this one), as the engine
never imports bpy.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
import time
from pathlib import Path

from .child import run_module
from .errors import EdnError
from .events import Reporter
from .models.config import check_trainable_size
from .pipeline import Pipeline, TrainOptions


@dataclasses.dataclass
class DemoOptions:
    minutes: float = 9.0  # training budget: the demo ends within 15 minutes on a 2-core CPU without bf16
    frames: int = 96  # frames of the training dance
    test_frames: int = 48  # frames of the second motion (generated and evaluated)
    size: int = 256  # square render and training size
    samples: int = 4  # Cycles samples per pixel (denoised with OpenImageDenoise)
    profile: str = "cpu"

    def validate(self) -> None:
        if not self.minutes > 0:
            raise EdnError(f"--minutes must be positive, not {self.minutes}")
        if self.frames < 8 or self.test_frames < 2:
            raise EdnError("the demo needs at least 8 training frames and 2 test frames")
        if not 32 <= self.size <= 2048:
            raise EdnError(f"--size must be 32 to 2048 pixels, not {self.size}")
        check_trainable_size(self.profile, (self.size, self.size))  # before minutes of rendering, not after


def run_demo(out_dir: str | Path, options: DemoOptions | None = None, reporter: Reporter | None = None) -> dict:
    """Run (or resume) the demo in `out_dir`; returns a summary naming every output and timing each stage."""
    opts = options or DemoOptions()
    opts.validate()
    reporter = reporter or Reporter(False)
    if importlib.util.find_spec("bpy") is None:
        raise EdnError("the demo renders with Blender as a Python module, which this Python lacks: run "
                       "`bash scripts/setup_env.sh` (it installs bpy into .venv) and use .venv/bin/edn")
    out = Path(out_dir).absolute()  # the children (Blender, generate) run elsewhere
    pipe = Pipeline(out, reporter)
    st = pipe.stages
    t_start = time.monotonic()

    size = opts.size
    dance, test = out / "scene_dance", out / "scene_transfer"
    scene_args = ["--size", str(size), "--samples", str(opts.samples)]
    render_info: dict[str, dict] = {}

    def blender(module: str, args: list[str], stage: str, log_path: Path) -> dict:
        """Blender as a Python module, in a child process (it must not share one with torch)."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        return run_module(module, args, reporter, stage=stage, log_path=log_path, what=f"Blender ({module})")

    def render(motion: str, folder: Path, frames: int, blend: bool) -> None:
        if folder.exists():
            shutil.rmtree(folder)
        args = ["--out", str(folder), "--motion", motion, "--frames", str(frames), *scene_args]
        if blend:
            args += ["--blend", str(folder / "scene.blend")]
        render_info[motion] = blender("edn_demo.scene", args, f"render {motion}", out / "logs" / f"render_{motion}.log")

    scene_opts = {"size": size, "samples": opts.samples, "scene": _source_stamp()}
    st.run("render_train", {**scene_opts, "frames": opts.frames}, [dance / "track.npz"],
           lambda: render("dance", dance, opts.frames, False))
    st.run("render_test", {**scene_opts, "frames": opts.test_frames}, [test / "track.npz", test / "scene.blend"],
           lambda: render("transfer", test, opts.test_frames, True))

    # Little held out: the demo evaluates on the second motion; these frames only feed training previews. The
    # camera is static, so the mannequin is learnt over a plate (person over plate), as footage of a person is.
    dataset = pipe.dataset(dance / "frames", (size, size), 0.05, dance / "track.npz", dance / "mattes",
                           opts.profile, framing="auto")
    perceptual = _perceptual(reporter)
    run_dir = pipe.train(dataset, TrainOptions(profile=opts.profile, minutes=opts.minutes, perceptual=perceptual,
                                               preview_every=200))
    generated = pipe.generate(run_dir, test / "track.npz", out / "generated")

    outputs = [out / "report.json", out / "contact_sheet.png", out / "side_by_side.mp4", out / "stick_figures"]
    st.run("evaluate", {"generated": generated, "truth": test / "frames", "dataset": dataset / "manifest.json"},
           outputs, lambda: evaluate_demo(out, dataset, test, generated, reporter))

    # The Sequencer, bottom to top: the render, the stick figures, EDN over the plate, EDN's person alone (RGBA).
    blend = out / "edn_demo.blend"
    strips = [f"Source render={test / 'frames'}", f"Stick figures={out / 'stick_figures'}"]
    if (generated / "composite").is_dir():
        strips.append(f"EDN over plate={generated / 'composite'}")
    strips.append(f"EDN person={generated}:alpha")
    st.run("blend", {"scene": test / "scene.blend", "generated": generated, "sticks": out / "stick_figures"},
           [blend], lambda: blender("edn_demo.blend",
                                    ["--scene", str(test / "scene.blend"), "--out", str(blend),
                                     *(a for strip in strips for a in ("--strip", strip))],
                                    "blend", out / "logs" / "blend.log"))

    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    summary = {
        "output": str(out), "blend": str(blend), "contact_sheet": str(out / "contact_sheet.png"),
        "side_by_side": str(out / "side_by_side.mp4"), "report": str(out / "report.json"),
        "generated": str(generated), "run": str(run_dir), "stages": dict(st.status), "seconds": dict(st.seconds),
        "total_seconds": round(time.monotonic() - t_start, 1), "perceptual": perceptual,
        "render": render_info, **report,
    }
    return summary


def _source_stamp() -> dict:
    """The scene builder's own files (the edn_demo package): editing the mannequin re-renders on the next run."""
    spec = importlib.util.find_spec("edn_demo")
    folders = [Path(p) for p in (spec.submodule_search_locations or [])] if spec is not None else []
    return {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for d in folders for f in sorted(d.glob("*.py"))}


# -- engine stages ----------------------------------------------------------------------------------------

def _perceptual(reporter: Reporter) -> str:
    """VGG19's perceptual loss when its weights are on this machine; never a 548 MB download inside the demo."""
    from .models.vgg import find_vgg19

    try:
        find_vgg19(allow_download=False)
        return "vgg19"
    except EdnError:
        reporter.log("VGG19 weights not found in the torch hub cache: training with L1 instead of the perceptual loss")
        return "none"


def evaluate_demo(out: Path, dataset: Path, truth: Path, generated: Path, reporter: Reporter) -> dict:
    """`edn eval`'s figures for the second motion against its ground-truth render (and its armature pose).

    Scored as `edn eval` scores: at the render's own framing (person over plate on its composites, a whole-frame
    run, the fallback, on its frames scaled back)."""
    import cv2

    from .dataset import FrameStore
    from .evaluate import Sample, clip_face_box, evaluate_frames
    from .pose.track import PoseTrack
    from .pose.window import frame_track
    from .retrieval import retrieve, retrieve_absolute
    from .tensors import stick_figure
    from .video import read_image, write_image

    store = FrameStore(dataset)
    gt = PoseTrack.load(truth / "track.npz")
    framings = store.plan.framings(gt, truth / "track.npz")
    seen = frame_track(gt, framings)  # the poses as the model sees them
    sticks = out / "stick_figures"
    if sticks.exists():
        shutil.rmtree(sticks)
    samples = []
    for i in range(gt.frames):
        n, fr = gt.frame_start + i, framings[i]
        real = read_image(truth / "frames" / f"frame_{n:06d}.png")
        matte = read_image(truth / "mattes" / f"matte_{n:06d}.png", cv2.IMREAD_GRAYSCALE)
        samples.append(Sample(n, real, matte, clip_face_box(store, fr, gt.body[i], gt.face[i])))
        write_image(sticks / f"frame_{n:06d}.png", stick_figure(gt, i))
    result = evaluate_frames(out, store, samples, generated, retrieve(store, seen.body), gt, reference=gt,
                             reporter=reporter, nearest_absolute=retrieve_absolute(store, gt.body))
    reporter.preview(result["contact_sheet"])
    return result


def describe(summary: dict) -> str:
    """Where everything is, for the terminal."""
    m, r = summary["model"], summary["retrieval"]

    def f(v, fmt="{:.3f}"):
        return "n/a" if v is None else fmt.format(v)

    lines = [
        "", f"EDN demo finished in {summary['total_seconds'] / 60:.1f} min. Outputs in {summary['output']}:",
        f"  Blender file (Sequencer: source render, stick figures, EDN over plate, EDN person): {summary['blend']}",
        f"  side-by-side video (stick figure | retrieval | EDN | ground truth): {summary['side_by_side']}",
        f"  contact sheet: {summary['contact_sheet']}",
        f"  generated RGBA frames: {summary['generated']} (over the plate: composite/)",
        f"  figures: {summary['report']}",
        "", f"  {'':<12}{'SSIM person':>12}{'PSNR person':>12}{'SSIM face':>11}{'pose error':>12}{'flicker':>9}",
    ]
    for name, d in (("EDN", m), ("retrieval", r)):
        lines.append(f"  {name:<12}{f(d['ssim_person']):>12}{f(d['psnr_person'], '{:.2f}'):>12}"
                     f"{f(d['ssim_face']):>11}{f(d['pose_error']):>12}{f(d['flicker'], '{:.2f}'):>9}")
    return "\n".join(lines)
