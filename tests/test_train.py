"""Training on real footage with tiny networks: it learns, resumes exactly after SIGKILL, stops cleanly on
SIGTERM, survives bad checkpoints and full disks, trains in two processes (gloo), and speaks JSON lines."""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import pathlib
import shutil
import signal
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import tiny_run
from conftest import ENGINE_PYTHON
from edn_engine import device as devices
from edn_engine.dataset import FrameStore, build_dataset
from edn_engine.errors import EdnError
from edn_engine.events import Reporter
from edn_engine.inference import Synthesizer, load_run
from edn_engine.models.config import get_profile
from edn_engine.models.face import build_face_generator, crop_faces, face_origins
from edn_engine.models.generator import build_generator
from edn_engine.runs import list_checkpoints, load_latest, read_checkpoint, save_checkpoint
from edn_engine.training import TrainConfig, train
from edn_engine.training.steps import FrozenBody, generate_pair


def _l1_on_training_frames(G, cfg, store, frames) -> float:
    synth = Synthesizer(G, None, cfg, torch.device("cpu"))
    errs = []
    for n in frames:
        synth.reset()
        rgb, _ = synth.next_frame(store.label(n))
        errs.append((rgb - store.image(n)).abs().mean().item())
    return sum(errs) / len(errs)


def test_generator_learns_the_target(run, dataset):
    run_dir, summary = run
    assert summary["step"] == tiny_run.TRAIN_STEPS and summary["stopped"] == "steps" and summary["face_stage"]
    with open(run_dir / "losses.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == list(range(1, tiny_run.TRAIN_STEPS + 1))
    assert {r["stage"] for r in rows} == {"body", "face"}
    values = [float(v) for r in rows for k, v in r.items() if k[:2] in ("G_", "D_", "F_") and v]
    assert values and all(math.isfinite(v) for v in values)
    assert (run_dir / "loss_curve.png").stat().st_size > 1000
    assert sorted(p.name for p in (run_dir / "previews").iterdir()) == ["preview_00000045.png",
                                                                         "preview_00000090.png"]
    preview = cv2.imread(str(run_dir / "previews" / "preview_00000090.png"))
    assert preview.shape == (3 * 64, 3 * 64, 3)  # 3 held-out frames: stick figure | generated | real
    assert [p.name for p in list_checkpoints(run_dir)] == ["step_00000060.pt", "step_00000090.pt"]

    store = FrameStore(dataset)
    frames = store.frames("train")[:6]
    with tiny_run.one_thread():
        trained = load_run(run_dir, "cpu")
        torch.manual_seed(0)  # the run's seed: the very weights it started from
        G0 = build_generator(get_profile("cpu", width=64, height=64, **tiny_run.TINY))
        before = _l1_on_training_frames(G0, trained.cfg, store, frames)
        after = _l1_on_training_frames(trained.G, trained.cfg, store, frames)
    assert after < 0.5 * before, (before, after)


def _train_cmd(dataset: Path, out: Path, *extra: str) -> list[str]:
    return [ENGINE_PYTHON, "-m", "edn_engine", "train", str(dataset), "-o", str(out), "--device", "cpu", "--json",
            *tiny_run.tiny_args(), *extra]


def test_resume_after_sigkill_gives_the_same_weights(dataset, tmp_path):
    args = ("--steps", "24", "--save-every", "4", "--preview-every", "8", "--face-fraction", "0.25")
    whole = subprocess.run(_train_cmd(dataset, tmp_path / "whole", *args), capture_output=True, text=True,
                           env=tiny_run.engine_env(), timeout=240)
    assert whole.returncode == 0, whole.stderr
    events = tiny_run.json_events(whole.stdout)  # the JSON stream parses line by line
    assert events[-1]["event"] == "done" and events[-1]["step"] == 24
    progress = [e for e in events if e["event"] == "progress"]
    assert progress[-1]["done"] == 24 and progress[-1]["total"] == 24
    assert {"losses", "sec_per_step", "eta_s", "preview"} <= set(progress[-1])
    previews = [e["path"] for e in events if e["event"] == "preview"]
    assert len(previews) == 3 and all(Path(p).is_file() for p in previews)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(dataset, killed, *args), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=tiny_run.engine_env())
    deadline = time.monotonic() + 120
    while not (killed / "checkpoints" / "step_00000008.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    steps_done = int(list_checkpoints(killed)[-1].stem.split("_")[1])
    assert 8 <= steps_done < 24, "the run finished before it could be killed"

    # resumed with its batches loaded by worker processes (--workers 2): the same batches as loaded in-process
    resumed = subprocess.run(_train_cmd(dataset, killed, *args, "--resume", "--workers", "2"), capture_output=True,
                             text=True, env=tiny_run.engine_env(), timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    assert tiny_run.json_events(resumed.stdout)[-1]["step"] == 24
    a = read_checkpoint(tmp_path / "whole" / "checkpoints" / "step_00000024.pt")
    b = read_checkpoint(killed / "checkpoints" / "step_00000024.pt")
    assert set(a["nets"]) == {"G", "D", "FG", "FD"}
    for net in a["nets"]:
        for k, v in a["nets"][net].items():
            assert torch.equal(v, b["nets"][net][k]), f"{net}.{k} differs after resume"
    for name in a["optim"]:
        for pid, st in a["optim"][name]["state"].items():
            for k, v in st.items():
                assert torch.equal(torch.as_tensor(v), torch.as_tensor(b["optim"][name]["state"][pid][k]))
    with open(killed / "losses.csv", newline="") as fh:
        assert [int(r["step"]) for r in csv.DictReader(fh)] == list(range(1, 25))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_sigterm_and_ctrl_c_save_a_checkpoint_and_exit_cleanly(dataset, tmp_path, sig):
    out = tmp_path / "run"
    proc = subprocess.Popen(_train_cmd(dataset, out, "--steps", "5000", "--save-every", "1000"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=tiny_run.engine_env())
    for line in proc.stdout:
        event = json.loads(line)
        if event["event"] == "progress" and event["done"] >= 3:
            proc.send_signal(sig)
            break
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    done = json.loads(rest.splitlines()[-1])
    assert done["event"] == "done" and done["stopped"] == "signal" and 3 <= done["step"] < 5000
    state = read_checkpoint(list_checkpoints(out)[-1])
    assert state["step"] == done["step"]


class _Payload:
    """A pickle that would run code when loaded: here it would create a file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_truncated_and_malicious_checkpoints_fall_back_to_the_previous_one(run, tmp_path):
    run_dir = tiny_run.copy_run(run[0], tmp_path / "run")
    newest = list_checkpoints(run_dir)[-1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # truncated (a crash mid-copy, say)
    log = io.StringIO()
    state, path = load_latest(run_dir, Reporter(True, stream=log))
    assert state["step"] == 60 and path.name == "step_00000060.pt"
    assert "step_00000090.pt" in log.getvalue() and "truncated" in log.getvalue()

    marker = tmp_path / "code ran"
    evil = run_dir / "checkpoints" / "step_00000999.pt"
    torch.save({"format": "edn-checkpoint", "payload": _Payload(marker)}, evil)
    with pytest.raises(EdnError, match="refused"):
        read_checkpoint(evil)
    state, path = load_latest(run_dir, Reporter(True, stream=io.StringIO()))
    assert path.name == "step_00000060.pt" and not marker.exists()

    (run_dir / "checkpoints" / "step_00000060.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(EdnError, match="no usable checkpoint"):
        load_latest(run_dir, Reporter(True, stream=io.StringIO()))


def test_full_disk_while_saving_keeps_the_last_good_checkpoint(dataset, tmp_path, monkeypatch):
    real_save = torch.save
    calls = []

    def save_until_disk_full(obj, f, *a, **kw):
        calls.append(f)
        if len(calls) == 1:
            return real_save(obj, f, *a, **kw)
        Path(f).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", save_until_disk_full)
    tcfg = TrainConfig(steps=6, save_every=2, preview_every=100, face_fraction=0, device="cpu")
    with tiny_run.one_thread(), pytest.raises(EdnError, match="disk is full"):
        train(dataset, tmp_path / "run", tcfg, overrides=dict(tiny_run.TINY))
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["step_00000002.pt"]
    assert read_checkpoint(tmp_path / "run" / "checkpoints" / "step_00000002.pt")["step"] == 2
    assert not [p for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.startswith(".")]  # no debris
    monkeypatch.setattr(torch, "save", real_save)
    (tmp_path / "a file").write_text("x")
    with pytest.raises(EdnError, match="cannot create"):
        save_checkpoint(tmp_path / "a file" / "run", {}, 1)  # a parent that cannot be created


def test_a_damaged_dataset_file_met_mid_run_keeps_the_steps_done(dataset, tmp_path, monkeypatch):
    """A damaged frame is met only when a step samples it: the steps done since the last checkpoint are saved
    before the error names the file, and the run resumes once it is mended."""
    real_image, calls = FrameStore.image, []

    def damaged_after_a_while(self, n):
        calls.append(n)
        if len(calls) > 10:
            raise EdnError("not a readable image", path=self.dir / "frames" / f"frame_{n:06d}.png", frame=n)
        return real_image(self, n)

    monkeypatch.setattr(FrameStore, "image", damaged_after_a_while)
    tcfg = TrainConfig(steps=12, save_every=1000, preview_every=1000, face_fraction=0, device="cpu")
    with tiny_run.one_thread(), pytest.raises(EdnError, match="not a readable image"):
        train(dataset, tmp_path / "run", tcfg, overrides=dict(tiny_run.TINY))
    saved = read_checkpoint(list_checkpoints(tmp_path / "run")[-1])["step"]
    assert 1 <= saved < 12
    monkeypatch.setattr(FrameStore, "image", real_image)
    with tiny_run.one_thread():
        assert train(dataset, tmp_path / "run", tcfg, resume=True)["step"] == 12


def test_a_dataset_frame_of_another_size_is_named(dataset, tmp_path):
    copy = Path(shutil.copytree(dataset, tmp_path / "dataset"))
    store = FrameStore(copy)
    n = store.frames("train")[0]
    cv2.imwrite(str(copy / "frames" / f"frame_{n:06d}.png"), np.zeros((32, 48, 3), np.uint8))
    with pytest.raises(EdnError, match=f"frame_{n:06d}.png.*is 48x32, the dataset {store.size[0]}x{store.size[1]}"):
        store.image(n)


def test_bad_input(run, dataset, tmp_path, root):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EdnError, match="not an EDN dataset"):
        train(empty, tmp_path / "r1", TrainConfig(steps=1), overrides=dict(tiny_run.TINY))
    # a dataset built at another size than the run being resumed
    track, mattes = tiny_run.source_pose(root)
    build_dataset(tiny_run.CLIP, tmp_path / "ds32", (32, 32), track=track, mattes=mattes, end=9)
    run_dir = tiny_run.copy_run(run[0], tmp_path / "run")
    with pytest.raises(EdnError, match="built at 32x32 but this run trains at 64x64"):
        train(tmp_path / "ds32", run_dir, TrainConfig(steps=100, device="cpu"), resume=True)
    with pytest.raises(EdnError, match="already holds checkpoints"):
        train(dataset, run_dir, TrainConfig(steps=100, device="cpu"), overrides=dict(tiny_run.TINY))
    blocker = tmp_path / "a file"
    blocker.write_text("x")
    with pytest.raises(EdnError, match="is a file"):
        train(dataset, blocker / "run", TrainConfig(steps=1, device="cpu"), overrides=dict(tiny_run.TINY))
    own = Path(shutil.copytree(dataset, tmp_path / "own dataset"))  # a copy: a regression must not spoil the fixture
    for inside in (own, own / "run"):  # its checkpoints among the frames: refused, nothing written
        with pytest.raises(EdnError, match="lies in the dataset it trains on"):
            train(own, inside, TrainConfig(steps=1, device="cpu"), overrides=dict(tiny_run.TINY))
    assert not (own / "run").exists() and not (own / "checkpoints").exists()
    res = tiny_run.edn("train", dataset, "-o", tmp_path / "r0", "--steps", "0", "--json")
    assert res.returncode == 2
    assert "--steps must be at least 1" in json.loads(res.stdout.splitlines()[-1])["message"]


def test_two_processes_with_gloo_hold_identical_weights(dataset, tmp_path):
    """One process trains 2 steps, two processes (DDP over gloo) resume it to 4 (the last in the face stage),
    one process resumes that to 6: checkpoints move both ways between one and several processes."""
    out = tmp_path / "ddp"
    with tiny_run.one_thread():
        train(dataset, out, TrainConfig(steps=2, save_every=100, preview_every=100, face_fraction=0.25,
                                        device="cpu"), overrides=dict(tiny_run.TINY))
    first = read_checkpoint(out / "checkpoints" / "step_00000002.pt")
    cmd = [ENGINE_PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "edn_engine", "train", str(dataset), "-o", str(out), "--device", "cpu", "--json", "--steps", "4",
           "--save-every", "100", "--resume", *tiny_run.tiny_args()]
    res = subprocess.run(cmd, capture_output=True, text=True, env=tiny_run.engine_env(), timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    events = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    assert [e["stage"] for e in events if e["event"] == "progress"] == ["train", "face"]  # only rank 0 reports
    done = events[-1]
    assert done["event"] == "done" and done["world_size"] == 2 and done["step"] == 4
    digests = done["generator_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]
    state = read_checkpoint(out / "checkpoints" / "step_00000004.pt")
    assert done["body_steps"] == state["plan"]["body_steps"] < 4  # where the face stage began
    # the processes trained every network, they did not just agree on the weights they started from
    for net in ("G", "D", "FG", "FD"):
        assert any(not torch.equal(v, state["nets"][net][k]) for k, v in first["nets"][net].items()), net
    # the bare networks' weights are saved, without DDP's "module." prefix
    cfg = get_profile("cpu", width=64, height=64, **tiny_run.TINY)
    assert state["nets"]["G"].keys() == build_generator(cfg).state_dict().keys()
    assert state["nets"]["FG"].keys() == build_face_generator(cfg).state_dict().keys()
    with tiny_run.one_thread():
        summary = train(dataset, out, TrainConfig(steps=6, save_every=100, preview_every=100, device="cpu"),
                        resume=True)
    assert summary["world_size"] == 1 and summary["step"] == 6 and summary["stopped"] == "steps"


def test_training_whose_events_have_no_reader_saves_and_stops(dataset, tmp_path):
    """The events' reader is gone (the process that started `edn train --json` was killed): the trainer stops
    and saves, as on SIGTERM, rather than dying on the broken pipe with its steps since the last checkpoint."""
    class Closed(io.StringIO):
        def write(self, text):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    tcfg = TrainConfig(steps=500, save_every=10**6, preview_every=10**6, device="cpu")
    with tiny_run.one_thread():
        summary = train(dataset, tmp_path / "run", tcfg, overrides=dict(tiny_run.TINY),
                        reporter=Reporter(True, Closed()))
    assert summary["stopped"] == "signal" and summary["step"] == 1
    assert read_checkpoint(list_checkpoints(tmp_path / "run")[-1])["step"] == 1


def test_device_choice_and_bf16_by_capability():
    assert devices.choose_device("cpu").type == "cpu"
    with pytest.raises(EdnError, match="unknown device"):
        devices.choose_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(EdnError, match="no CUDA GPU"):
            devices.choose_device("cuda")
        assert devices.choose_device("auto").type in ("cpu", "mps")
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    if flags:
        native = any(f in flags for f in ("amx_bf16", "avx512_bf16", "bf16"))
        assert devices.bf16_supported(torch.device("cpu")) == native
    cpu = torch.device("cpu")
    assert devices.use_channels_last(cpu, training=True) is False  # measured slower for CPU training
    with devices.autocast(cpu, enabled=False):
        assert not torch.is_autocast_enabled("cpu")
    if devices.bf16_supported(cpu):  # where bf16 is native, autocast is on and computes in bf16
        with devices.autocast(cpu, enabled=True):
            assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
            assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.bfloat16


def test_resumed_losses_csv_keeps_one_header_when_the_losses_logged_change(tmp_path):
    """A run begun by an engine that logged fewer losses (no G_hand) is resumed: the rows kept are rewritten by
    column name under today's header, so every value stays under its own name."""
    from edn_engine.training.logs import HEADER, append_csv, trim_csv

    path = tmp_path / "losses.csv"
    old = ["step", "stage", "lr", "sec_per_step", "G_gan", "G_limb", "G_alpha"]
    path.write_text("\n".join([",".join(old), "1,body,0.0002,1.0,0.5,0.25,0.125", "2,body,0.0002,1.0,0.6,0.3,0.2",
                               "3,body,0.0002,1.0,0.7,0.35,0.3"]) + "\n", encoding="utf-8")
    trim_csv(path, 2)
    append_csv(path, 3, "body", 2e-4, 1.0, {"G_gan": 0.9, "G_limb": 0.4, "G_hand": 0.7, "G_alpha": 0.1})
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == HEADER and [r["step"] for r in rows] == ["1", "2", "3"]
    assert (rows[0]["G_limb"], rows[0]["G_alpha"], rows[0]["G_hand"]) == ("0.25", "0.125", "")
    assert (rows[2]["G_limb"], rows[2]["G_hand"], rows[2]["G_alpha"]) == ("0.4", "0.7", "0.1")


def test_the_face_stage_generates_each_pairs_body_crops_once():
    """The body is frozen in the face stage: a pair's face crops (and how much of each is the person's) are
    generated the first time it comes round and kept, equal (to half precision) to generating them again; past its
    byte budget every batch is generated."""
    cfg = get_profile("cpu", width=64, height=64, face_size=32)
    torch.manual_seed(0)
    G = build_generator(cfg)
    calls = []
    G.register_forward_hook(lambda *_: calls.append(1))
    batch = {"label": torch.rand(2, 2, 3, 64, 64) * 2 - 1, "frame": torch.tensor([[3, 4], [7, 8]])}
    origins = face_origins(torch.tensor([[20.0, 20.0], [40.0, 30.0]]), 32, 64, 64)  # each pair's second frame
    amp = devices.autocast(torch.device("cpu"), False)
    body = FrozenBody(G)
    first = body.face_crops(batch, origins, 32, amp)
    assert len(calls) == 2  # I0 and I1 of both pairs, once
    with torch.no_grad():
        fake0, fake1, _, _ = generate_pair(G, batch["label"][:, 0], batch["label"][:, 1], batch, amp)
    assert torch.allclose(first[:, :3], crop_faces(fake1, origins, 32), atol=1e-3)  # I1: made from I0, as in use
    assert torch.equal(first[:, 3:], torch.ones(2, 1, 32, 32))  # no plate: the whole frame is the body's
    later = {"label": batch["label"][1:], "frame": batch["frame"][1:]}  # pair (7, 8) alone: kept, not generated
    assert torch.equal(body.face_crops(later, origins[[1]], 32, amp), first[[1]])
    assert len(calls) == 4 and sorted(body.crops) == [("face", 3, 4), ("face", 7, 8)]
    full = FrozenBody(G, max_bytes=0)
    assert torch.equal(full.face_crops(batch, origins, 32, amp), first)
    full.face_crops(later, origins[[1]], 32, amp)
    assert len(calls) == 8 and not full.crops


def test_which_pairs_are_mirrored_is_a_function_of_their_place_in_the_stream():
    from edn_engine.training.distributed import StepSampler

    one = StepSampler(50, 4, 0, 1, seed=3)
    assert StepSampler(50, 4, 0, 1, seed=-1).mirrored(0, 0.5) == StepSampler(50, 4, 0, 1, seed=-1).mirrored(0, 0.5)
    flags = [m for step in range(100) for m in one.mirrored(step, 0.5)]
    assert 0.4 < sum(flags) / len(flags) < 0.6 and flags == [m for s in range(100) for m in one.mirrored(s, 0.5)]
    # two processes at batch 2 mirror what one process at batch 4 does (a checkpoint moves between them)
    ranks = [StepSampler(50, 2, r, 2, seed=3) for r in (0, 1)]
    assert flags == [m for s in range(100) for r in ranks for m in r.mirrored(s, 0.5)]
    assert not any(one.mirrored(7, 0.0)) and all(one.mirrored(7, 1.0))
    assert flags != [m for s in range(100) for m in StepSampler(50, 4, 0, 1, seed=4).mirrored(s, 0.5)]
