"""Checkpoints and the run folder: damaged files are caught by their checksum and skipped with a clear warning,
--resume refuses settings that differ from the run's, bad --set values and untrainable sizes are named, and a
failed `edn train` leaves no empty folders behind."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

import tiny_run
from edn_engine.errors import EdnError
from edn_engine.events import Reporter
from edn_engine.models.config import ModelConfig, check_trainable_size, get_profile
from edn_engine.runs import list_checkpoints, load_latest, read_checkpoint, save_checkpoint, state_digest
from edn_engine.training import TrainConfig, train


def _flip_bytes_inside(path: Path, tensor: torch.Tensor, count: int = 64) -> None:
    """Invert `count` bytes in the middle of `tensor`'s data as stored in the checkpoint file (bit rot)."""
    raw = bytearray(path.read_bytes())
    data = tensor.contiguous().numpy().tobytes()
    assert len(data) > 2 * count and raw.count(data) == 1
    middle = raw.find(data) + len(data) // 2
    for k in range(middle, middle + count):
        raw[k] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_flipped_bytes_in_an_optimizer_tensor_fall_back_to_the_previous_checkpoint(run, tmp_path):
    run_dir = tiny_run.copy_run(run[0], tmp_path / "run")
    newest = list_checkpoints(run_dir)[-1]
    moments = read_checkpoint(newest)["optim"]["G"]["state"][0]["exp_avg"]
    _flip_bytes_inside(newest, moments)
    assert not torch.equal(torch.load(newest, weights_only=True)["optim"]["G"]["state"][0]["exp_avg"], moments), \
        "torch's own reader must load the damaged file without noticing (what the checksum is for)"

    with pytest.raises(EdnError, match="do not match the SHA-256 checksum"):
        read_checkpoint(newest)
    log = io.StringIO()
    state, path = load_latest(run_dir, Reporter(True, stream=log))
    assert path.name == "step_00000060.pt" and state["step"] == 60
    warning = json.loads(log.getvalue().splitlines()[0])["message"]
    assert warning == (f"warning: checkpoint {newest} is damaged: its contents do not match the SHA-256 checksum "
                       "saved with it; using step_00000060.pt (step 60) instead.")


def test_fallback_warnings_are_whole_sentences(run, tmp_path):
    run_dir = tiny_run.copy_run(run[0], tmp_path / "run")
    newest = list_checkpoints(run_dir)[-1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # truncated
    log = io.StringIO()
    load_latest(run_dir, Reporter(True, stream=log))
    warning = json.loads(log.getvalue().splitlines()[0])["message"]
    assert warning == (f"warning: checkpoint {newest} is truncated or damaged: torch cannot read it; "
                       "using step_00000060.pt (step 60) instead.")


def test_checksum_covers_plain_values_and_old_files_still_load(tmp_path):
    state = {"model": {"ngf": 8}, "plan": {"steps": 4, "body_steps": 3}, "w": torch.arange(6.0).reshape(2, 3),
             "optim": {"G": {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"betas": (0.5, 0.9)}]}}}
    path = save_checkpoint(tmp_path / "run", state, 4)
    saved = torch.load(path, weights_only=True)
    assert saved["sha256"] == state_digest({k: v for k, v in saved.items() if k != "sha256"})
    assert read_checkpoint(path)["plan"] == {"steps": 4, "body_steps": 3}

    saved["plan"]["steps"] = 5  # a plain value changed after the checksum was written
    torch.save(saved, path)
    with pytest.raises(EdnError, match="checksum"):
        read_checkpoint(path)
    del saved["sha256"]
    torch.save(saved, path)
    with pytest.raises(EdnError, match="lacks its checksum"):
        read_checkpoint(path)
    saved["version"] = 1  # written before checksums existed: read, unchecked
    torch.save(saved, path)
    assert read_checkpoint(path)["plan"]["steps"] == 5


def test_resume_refuses_a_different_profile_or_model_setting(run, dataset, tmp_path):
    run_dir = tiny_run.copy_run(run[0], tmp_path / "run")
    before = sorted(p.name for p in list_checkpoints(run_dir))
    tcfg = TrainConfig(steps=tiny_run.TRAIN_STEPS + 2, device="cpu")
    with pytest.raises(EdnError, match="the run was trained with profile cpu; --profile paper-global differs: "
                                       "drop it or start a new run"):
        train(dataset, run_dir, tcfg, profile="paper-global", resume=True)
    with pytest.raises(EdnError, match="the run was trained with ngf=8; --set ngf=16 differs"):
        train(dataset, run_dir, tcfg, overrides={**tiny_run.TINY, "ngf": 16}, resume=True)
    with pytest.raises(EdnError, match="the run was trained with perceptual=none; --perceptual vgg19 differs"):
        train(dataset, run_dir, tcfg, overrides={"perceptual": "vgg19"}, resume=True)
    assert sorted(p.name for p in list_checkpoints(run_dir)) == before  # nothing trained

    log = io.StringIO()
    with tiny_run.one_thread():
        summary = train(dataset, run_dir, TrainConfig(steps=tiny_run.TRAIN_STEPS + 1, seed=7, device="cpu"),
                        profile="cpu", overrides=dict(tiny_run.TINY), resume=True, reporter=Reporter(True, log))
    assert summary["step"] == tiny_run.TRAIN_STEPS + 1
    said = [json.loads(line)["message"] for line in log.getvalue().splitlines() if '"log"' in line]
    assert "resuming from step_00000090.pt (step 90) with the run's own settings: profile cpu, its model settings, " \
           "seed 0, face fraction 0.1, mirror 0.0 (this command's seed 7 and face fraction 0.3 not used)" in said
    assert read_checkpoint(list_checkpoints(run_dir)[-1])["train"]["seed"] == 0


def test_bad_set_values_are_named(dataset, tmp_path):
    res = tiny_run.edn("train", dataset, "-o", tmp_path / "r", "--set", "ngf=abc", "--json")
    assert res.returncode == 2, res.stderr
    assert json.loads(res.stdout.splitlines()[-1])["message"] == "model setting ngf must be an integer, not 'abc'"
    assert not (tmp_path / "r").exists()
    with pytest.raises(EdnError, match=r"unknown model setting 'ngf_typo'; known settings: width, height, .*ngf"):
        get_profile("cpu", ngf_typo=3)
    with pytest.raises(EdnError, match="model setting face must be true or false, not 'yes'"):
        get_profile("cpu", face="yes")
    with pytest.raises(EdnError, match="model lambda_l1 must not be negative, not -1.0"):
        get_profile("cpu", lambda_l1=-1)
    with pytest.raises(EdnError, match="model ngf must be at least 1, not 0"):
        get_profile("cpu", ngf=0)
    assert get_profile("cpu", lambda_l1=2).lambda_l1 == 2.0 and isinstance(get_profile("cpu", lambda_l1=2).lambda_l1,
                                                                             float)
    with pytest.raises(EdnError, match="must be an integer"):
        ModelConfig.from_dict({**get_profile("cpu").to_dict(), "ngf": "16"})  # a foreign checkpoint's config
    with pytest.raises(EdnError, match="--set width: the training size is the dataset's"):
        train(dataset, tmp_path / "r", TrainConfig(steps=1, device="cpu"), overrides={"width": 128})


def test_sizes_a_profile_cannot_train():
    check_trainable_size("cpu", (256, 256))
    check_trainable_size("paper-local", (1024, 512))
    with pytest.raises(EdnError, match=r"^size 100x100 cannot be trained by profile cpu: width and height must be "
                                       r"multiples of 16, at least 32 \(its generator halves the frame 4 times\); "
                                       r"96x96 would do$"):
        check_trainable_size("cpu", (100, 100))
    with pytest.raises(EdnError, match="at least 32 .*; 32x64 would do$"):  # a one-pixel bottleneck: no training
        check_trainable_size("cpu", (16, 64), {"face": False})
    with pytest.raises(EdnError, match="multiples of 32"):
        check_trainable_size("paper-local", (512, 272))
    with pytest.raises(EdnError, match="size 32x32 cannot be trained by profile cpu: the Face GAN's 48-pixel crop"):
        check_trainable_size("cpu", (32, 32), {"face_size": 48})
    check_trainable_size("cpu", (32, 32), {"face": False})
    with pytest.raises(EdnError, match="unknown model profile"):
        check_trainable_size("gpu", (256, 256))
    from edn_engine.demo import DemoOptions

    with pytest.raises(EdnError, match="size 40x40 cannot be trained by profile cpu"):
        DemoOptions(size=40).validate()  # refused before the demo renders its scenes


def test_trainer_refuses_an_untrainable_size_naming_the_dataset(dataset, tmp_path):
    with pytest.raises(EdnError, match=f"^{dataset}: size 64x64 cannot be trained by profile cpu: width and height "
                                       "must be multiples of 128"):
        train(dataset, tmp_path / "r", TrainConfig(steps=1, device="cpu"), overrides={**tiny_run.TINY,
                                                                                        "n_downsample": 7})


def test_run_folder_checked_first_and_no_empty_folders_left(dataset, tmp_path):
    blocker = tmp_path / "a file"
    blocker.write_text("x")
    with pytest.raises(EdnError, match="the run folder is a file"):
        train(tmp_path / "no dataset", blocker, TrainConfig(steps=1, device="cpu"))  # before the dataset's error

    with pytest.raises(EdnError, match="not an EDN dataset|dataset folder not found"):
        train(tmp_path / "no dataset", tmp_path / "new run", TrainConfig(steps=1, device="cpu"))
    assert not (tmp_path / "new run").exists()

    existing = tmp_path / "existing run"
    existing.mkdir()
    with pytest.raises(EdnError):  # fails after set-up began: VGG19 weights that are not there
        train(dataset, existing, TrainConfig(steps=1, device="cpu", vgg_weights=str(tmp_path / "missing.pth")),
              overrides={**tiny_run.TINY, "perceptual": "vgg19"})
    assert existing.is_dir() and not (existing / "checkpoints").exists()


def test_a_run_that_fails_before_its_first_save_leaves_only_what_was_there(dataset, tmp_path, monkeypatch):
    """run.json, the logs and the previews of a run that never saved are removed: nothing there to resume."""
    import edn_engine.training.trainer as trainer

    def broken_step(*args, **kwargs):
        raise RuntimeError("the first step failed")

    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    monkeypatch.setattr(trainer, "body_step", broken_step)
    with pytest.raises(RuntimeError, match="the first step failed"):
        train(dataset, run, TrainConfig(steps=2, device="cpu"), overrides=tiny_run.TINY)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]

    monkeypatch.undo()  # a run with a checkpoint keeps everything when a later session fails
    train(dataset, run, TrainConfig(steps=1, device="cpu"), overrides=tiny_run.TINY)
    kept = sorted(p.name for p in run.iterdir())
    monkeypatch.setattr(trainer, "body_step", broken_step)
    with pytest.raises(RuntimeError, match="the first step failed"):
        train(dataset, run, TrainConfig(steps=10, device="cpu"), resume=True)
    assert sorted(p.name for p in run.iterdir()) == kept and "run.json" in kept


def test_steps_none_needs_minutes():
    with pytest.raises(EdnError, match="give a training budget: --steps or --minutes"):
        TrainConfig(steps=None)
    assert TrainConfig(steps=None, minutes=1.0).steps is None


def test_garbage_is_called_damaged_and_code_is_refused(tmp_path):
    path = tmp_path / "step_00000001.pt"
    path.write_bytes(bytes(range(256)) * 16)  # not a zip: torch's legacy unpickler meets garbage
    with pytest.raises(EdnError, match="is truncated or damaged: torch cannot read it$"):
        read_checkpoint(path)
    torch.save({"format": "edn-checkpoint", "call": getattr}, path)  # a reference to code
    with pytest.raises(EdnError, match="was refused: it is not plain data"):
        read_checkpoint(path)
