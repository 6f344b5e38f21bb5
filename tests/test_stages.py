"""The stage-reuse rules behind `edn transfer` and the pipeline: a stage is redone exactly when its inputs
changed, its outputs are gone, or it never finished; an interrupted attempt with the same inputs is resumable."""

from __future__ import annotations

import os

import pytest

from edn_engine.stages import Stages, fingerprint


def test_fingerprint_follows_files_folders_and_options(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("one")
    before = fingerprint({"file": f, "opt": 3, "list": [f, "x"], "missing": tmp_path / "nope"})
    assert before["missing"] == {"missing": str((tmp_path / "nope").absolute())}
    assert fingerprint({"file": f, "opt": 3, "list": [f, "x"], "missing": tmp_path / "nope"}) == before
    f.write_text("two, longer")
    assert fingerprint({"file": f})["file"] != before["file"]  # size (and mtime) changed
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "x").write_text("1")
    d1 = fingerprint(folder)
    (folder / "y").write_text("2")
    d2 = fingerprint(folder)
    assert d1["files"] == 1 and d2["files"] == 2 and d1["digest"] != d2["digest"]
    st = (folder / "x").stat()
    os.utime(folder / "x", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched: same size, new mtime
    assert fingerprint(folder)["digest"] != d2["digest"]


def test_a_stage_is_reused_only_while_its_inputs_and_outputs_stand(tmp_path):
    src, out = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("a")
    runs = []

    def work():
        runs.append(1)
        out.write_text(src.read_text().upper())

    st = Stages(tmp_path)
    assert st.run("upper", {"src": src}, [out], work) is True and st.status["upper"] == "ran"
    assert Stages(tmp_path).run("upper", {"src": src}, [out], work) is False  # same inputs: reused
    assert len(runs) == 1
    src.write_text("bb")  # the input changed: redone
    assert Stages(tmp_path).run("upper", {"src": src}, [out], work) is True and out.read_text() == "BB"
    out.unlink()  # the output is gone: redone
    assert Stages(tmp_path).run("upper", {"src": src}, [out], work) is True
    assert Stages(tmp_path).run("upper", {"src": src, "opt": 1}, [out], work) is True  # an option changed
    assert len(runs) == 4


def test_an_interrupted_stage_is_redone_and_knows_it_may_resume(tmp_path):
    out = tmp_path / "out.txt"
    seen = []

    def interrupted():
        seen.append(st.resumable)
        raise KeyboardInterrupt

    st = Stages(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        st.run("train", {"steps": 10}, [out], interrupted)
    st = Stages(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        st.run("train", {"steps": 10}, [out], interrupted)  # same inputs as the interrupted attempt
    st = Stages(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        st.run("train", {"steps": 20}, [out], interrupted)  # other inputs: start afresh
    assert seen == [False, True, False]

    def finish():
        seen.append(st.resumable)
        out.write_text("done")

    st = Stages(tmp_path)
    assert st.run("train", {"steps": 20}, [out], finish) is True and seen[-1] is True
    assert not (tmp_path / ".stages" / "train.attempt.json").exists()  # a finished stage leaves its stamp only
    assert Stages(tmp_path).run("train", {"steps": 20}, [out], finish) is False


def test_a_pipelines_model_settings_reach_the_run_and_make_it_another_stage(dataset, tmp_path):
    """`TrainOptions.settings` (bench_quality's --set) trains with them, and a change retrains instead of reusing."""
    import json

    import tiny_run
    from edn_engine.events import Reporter
    from edn_engine.pipeline import Pipeline, TrainOptions

    pipe = Pipeline(tmp_path / "project", Reporter(False))
    tiny = {k: v for k, v in tiny_run.TINY.items() if k != "perceptual"}
    with tiny_run.one_thread():
        run = pipe.train(dataset, TrainOptions(steps=1, face_fraction=0, perceptual="none", settings=tiny))
        assert json.loads((run / "run.json").read_text())["model"]["ngf"] == tiny["ngf"]
        pipe.train(dataset, TrainOptions(steps=1, face_fraction=0, perceptual="none", settings={**tiny, "ngf": 4}))
    assert json.loads((run / "run.json").read_text())["model"]["ngf"] == 4


def test_a_changed_profile_retrains_instead_of_reusing_the_run(tmp_path, monkeypatch):
    """The train stage keys on what the profile holds, not only its name: a newer EDN whose `cpu` profile (or
    trainer default) changed trains again in an old project, and an unchanged one is reused."""
    import dataclasses

    import edn_engine.pipeline as pipeline
    from edn_engine.events import Reporter
    from edn_engine.models import config

    trained: list[str] = []

    def fake_train_run(dataset, run_dir, options, reporter, resume=False):
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "run.json").write_text("{}")
        trained.append(options.profile)

    monkeypatch.setattr(pipeline, "train_run", fake_train_run)
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / "manifest.json").write_text("{}")
    pipe = pipeline.Pipeline(tmp_path / "project", Reporter(False))
    options = pipeline.TrainOptions(minutes=1.0)
    pipe.train(dataset, options)
    pipe.train(dataset, options)
    assert len(trained) == 1  # unchanged: reused
    monkeypatch.setitem(config.PROFILES, "cpu", dataclasses.replace(config.PROFILES["cpu"], lambda_hand=5.0))
    pipe.train(dataset, options)
    assert len(trained) == 2  # the profile's content changed under the same name
    defaults = pipeline.train_config
    monkeypatch.setattr(pipeline, "train_config", lambda o: dataclasses.replace(defaults(o), lr=1e-4))
    pipe.train(dataset, options)
    assert len(trained) == 3  # a trainer default changed
