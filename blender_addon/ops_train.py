"""The Train operator: learn the target person's appearance, in their project folder (dataset, then run)."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, IntProperty, StringProperty

from . import engine, jobs, paths, preferences, runner, sequencer
from .ops_base import EdnOperator, OpError, edn_scene, engine_python, poll_scene

KIND = "train"


class EDN_OT_train(EdnOperator, bpy.types.Operator):
    """Learn the target person's appearance (builds the dataset first); Cancel saves a checkpoint, Resume goes on"""

    bl_idname = "edn.train"
    bl_label = "Train"

    strip: StringProperty(name="Target Strip", options={"SKIP_SAVE"})
    resume: BoolProperty(name="Resume", default=False, options={"SKIP_SAVE"},
                         description="Continue the last training run from its checkpoint")
    minutes: IntProperty(name="Minutes", default=-1, options={"SKIP_SAVE"}, description="-1: the panel's value")
    steps: IntProperty(name="Steps", default=-1, options={"SKIP_SAVE"}, description="-1: the panel's value")

    @classmethod
    def poll(cls, context):
        if not poll_scene(cls, context):
            return False
        if jobs.MANAGER.active(kind=KIND):
            cls.poll_message_set("A training job is running: cancel it first")
            return False
        return True

    def run(self, context):
        scene = edn_scene(context)
        s = scene.edn
        python = engine_python(context)
        src = sequencer.strip_source(scene, self.strip or s.target_strip)
        project = paths.layout(scene, src.name)
        dataset, run_dir = project.dataset, project.run
        if self.resume and not run_dir.is_dir():
            raise OpError(f"there is no training run to resume at {run_dir}: press Train first")
        steps = []
        if not (dataset / "manifest.json").is_file():
            steps.append(self._dataset_step(python, scene, src, dataset))
        minutes = s.train_minutes if self.minutes < 0 else self.minutes
        n_steps = s.train_steps if self.steps < 0 else self.steps
        perceptual = None if s.perceptual == "PROFILE" else s.perceptual  # only a choice the artist made is sent
        steps.append(engine.train(python, dataset, run_dir, s.profile, minutes, n_steps, self.resume,
                                  preferences.get(context).device, perceptual))

        def keep_run(sc, job):  # a cancelled run has a checkpoint to resume from
            if job.state == jobs.DONE or run_dir.is_dir():
                sc.edn.dataset_dir, sc.edn.run_dir = str(dataset), str(run_dir)

        job = runner.submit_engine(context, scene, KIND, "Train" + (" (resume)" if self.resume else ""), steps,
                                   [runner.for_scene(scene, keep_run, (jobs.DONE, jobs.CANCELLED))])
        return f"Training on '{src.name}' (log: {job.log_path})"

    @staticmethod
    def _dataset_step(python: str, scene, src: sequencer.StripSource, dataset) -> list[str]:
        """Build the dataset from the strip, reusing its extracted pose and mattes when they are of this strip."""
        s = scene.edn
        track = paths.abspath(s.target_track) if s.target_track and s.target_strip == src.name else None
        if track is not None and not track.is_file():
            track = None
        mattes = track.parent / "mattes" if track is not None and (track.parent / "mattes").is_dir() else None
        return engine.dataset_build(python, src.media, dataset, s.width, s.height, track, src.first, src.last,
                                    mattes)


CLASSES = (EDN_OT_train,)
