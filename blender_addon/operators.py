"""The EDN operators. Each takes its inputs as properties too, so scripts and tests run them without a UI.

Operators check their inputs in Blender (strip exists, file present, camera set...) and report a clear error,
then hand the engine work to a background job; the job's `on_done` puts results back (paths on the scene,
strips in the Sequencer). Pose from an armature runs here in Blender: it needs the evaluated rig.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from . import armature_pose, compat, engine, jobs, preferences, sequencer
from .properties import BONE_MAPS

FIGURES_STRIP = "EDN Stick Figures"
RESULT_STRIP = "EDN Result"
FIGURE_FILES = r"figure_\d+\.png"
FRAME_FILES = r"frame_\d+\.png"
TIMER_INTERVAL = 0.25


class OpError(Exception):
    """An input problem the operator reports to the artist."""


# ----------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------
def edn_scene(context):
    scene = compat.sequencer_scene(context)
    if scene is None:
        raise OpError("there is no scene")
    return scene


def safe_name(name: str) -> str:
    """A folder name from a strip or object name: keeps spaces and non-ASCII, drops path separators."""
    cleaned = re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", name).strip(" .")
    return cleaned or "untitled"


def project_dir(scene) -> Path:
    raw = scene.edn.project_dir or "//edn/"
    if raw.startswith("//") and not bpy.data.filepath:
        raise OpError("the .blend file is not saved yet: save it, or set an absolute Project Folder in the EDN panel")
    path = Path(bpy.path.abspath(raw))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OpError(f"cannot create the project folder {path}: {exc.strerror or exc}") from exc
    return path


def engine_python(context) -> str:
    python = preferences.get(context).python()
    why = jobs.python_executable_ok(python)
    if why:
        raise OpError(why)
    return python


def abspath(p: str) -> Path:
    return Path(bpy.path.abspath(p))


def need_file(path: str, what: str, hint: str) -> Path:
    if not path:
        raise OpError(f"no {what} yet: {hint}")
    p = abspath(path)
    if not p.exists():
        raise OpError(f"the {what} {p} is missing: {hint}")
    return p


def submit(context, scene, label: str, steps: list[list[str]], on_done=None, device: str | None = None) -> jobs.Job:
    """Queue an engine job; its failure lands in the panel (scene.edn.last_error) with the log path."""
    prefs = preferences.get(context)
    log_dir = project_dir(scene) / "logs"
    uid = scene.session_uid

    def on_end(job: jobs.Job) -> None:
        sc = _job_scene(uid)
        if sc is None:
            return
        sc.edn.last_log = str(job.log_path)
        sc.edn.last_error = job.error if job.state == jobs.FAILED else ""
        if job.loss_text:
            sc.edn.last_loss = job.loss_text

    job = jobs.Job(label=label, steps=steps, log_path=jobs.new_log_path(log_dir, label),
                   env=engine.engine_env(prefs.device), cwd=engine.VENDOR_DIR, device=device or prefs.device,
                   on_done=on_done, on_end=on_end)
    jobs.MANAGER.submit(job)
    ensure_timer()
    if job.state == jobs.FAILED:
        raise OpError(job.error)
    return job


def _job_scene(uid: int):
    """The scene a job belongs to (even if renamed), or None if it is gone (another .blend was opened)."""
    return next((sc for sc in bpy.data.scenes if sc.session_uid == uid), None)


def _scene_cb(scene, fn):
    """A job callback that finds its scene again by session id (the Python object may be stale by then).

    If another .blend was opened meanwhile, results are not written into it; the outputs stay on disk.
    """
    uid = scene.session_uid

    def callback(job):
        sc = _job_scene(uid)
        if sc is None:
            job.status = f"done; its .blend was closed, outputs are in {job.log_path.parent.parent}"
            return
        fn(sc, job)
    return callback


def source_placement(scene) -> tuple[int, int]:
    """(timeline start, channel) of the source: its strip, or the scene range for an armature."""
    s = scene.edn
    if s.source_kind == "STRIP" and s.source_strip:
        src = sequencer.strip_source(scene, s.source_strip)
        return src.timeline_start, src.channel
    track = abspath(s.source_track) if s.source_track else None
    if track is not None and track.is_file():  # an armature's track starts at its scene's first frame
        with np.load(track) as data:
            return int(data["frame_start"]), 0
    return scene.frame_start, 0


def _tick():
    """The UI's timer: poll the jobs and redraw; stops itself when nothing is running."""
    busy = jobs.MANAGER.poll_all()
    wm = getattr(bpy.context, "window_manager", None)
    for window in (wm.windows if wm else ()):
        for area in window.screen.areas:
            if area.type in ("SEQUENCE_EDITOR", "PREFERENCES"):
                area.tag_redraw()
    return TIMER_INTERVAL if busy else None


def ensure_timer() -> None:
    if not bpy.app.timers.is_registered(_tick):  # persistent: jobs go on while another .blend is opened
        bpy.app.timers.register(_tick, first_interval=TIMER_INTERVAL, persistent=True)


class _Op:
    """Shared execute: run `self.run(context)`; input problems become an error report, nothing half-done."""

    bl_options = {"REGISTER"}

    def execute(self, context):
        try:
            message = self.run(context)
        except (OpError, sequencer.StripError, armature_pose.MappingError) as exc:
            self.report({"ERROR"}, str(exc))
            scene = compat.sequencer_scene(context)
            if scene is not None and hasattr(scene, "edn"):
                scene.edn.last_error = str(exc)
            return {"CANCELLED"}
        if message:
            self.report({"INFO"}, message)
        return {"FINISHED"}


def _poll_scene(cls, context) -> bool:
    if compat.sequencer_scene(context) is None:
        cls.poll_message_set("There is no scene")
        return False
    return True


# ----------------------------------------------------------------------------------------------------------------
# engine set-up and check
# ----------------------------------------------------------------------------------------------------------------
class EDN_OT_setup_engine(_Op, bpy.types.Operator):
    """Create the engine's own Python environment and install PyTorch and MediaPipe into it (background)"""

    bl_idname = "edn.setup_engine"
    bl_label = "Set up Engine"

    venv_dir: StringProperty(name="Folder", subtype="DIR_PATH", options={"SKIP_SAVE"},
                             description="Environment folder (empty: preferences / extension folder)")
    base_python: StringProperty(name="Base Python", subtype="FILE_PATH", options={"SKIP_SAVE"},
                                description="Python that creates the environment (empty: preferences)")

    @classmethod
    def poll(cls, context):
        if any(j.device == "setup" for j in jobs.MANAGER.active()):
            cls.poll_message_set("The engine is being set up already")
            return False
        return True

    def run(self, context):
        prefs = preferences.get(context)
        base = bpy.path.abspath(self.base_python) if self.base_python else prefs.setup_base_python()
        why = jobs.python_executable_ok(base)
        if why:
            raise OpError(f"cannot create the engine environment: {why.replace('engine Python', 'base Python')}")
        venv = abspath(self.venv_dir) if self.venv_dir else prefs.venv_path()
        if engine.is_blenders_python(engine.venv_python(venv)):
            raise OpError("the engine environment may not be Blender's own Python; choose another folder")
        steps = engine.setup_steps(base, venv)
        log_dir = Path(bpy.utils.extension_path_user(__package__, create=True)) / "logs"
        custom_dir = bool(self.venv_dir)

        def done(job):
            p = preferences.get()
            p.engine_mode = "VENV"
            if custom_dir:
                p.venv_dir = str(venv)
            p.check_report = f"Engine environment ready: {venv}"

        def end(job):
            if job.state != jobs.DONE:
                preferences.get().check_report = f"Set-up {job.state.lower()}: {job.error or job.status}"

        job = jobs.Job(label="Set up engine", steps=steps, log_path=jobs.new_log_path(log_dir, "setup"),
                       env=None, device="setup", on_done=done, on_end=end)
        jobs.MANAGER.submit(job)
        ensure_timer()
        if job.state == jobs.FAILED:
            raise OpError(job.error)
        return f"Setting up the engine in {venv} (log: {job.log_path})"


class EDN_OT_check_engine(_Op, bpy.types.Operator):
    """Ask the engine what it sees: PyTorch version, device and free memory"""

    bl_idname = "edn.check_engine"
    bl_label = "Check Engine"

    def run(self, context):
        prefs = preferences.get(context)
        python = prefs.python()
        why = jobs.python_executable_ok(python)
        if why:
            prefs.check_report = why
            raise OpError(why)
        log_dir = Path(bpy.utils.extension_path_user(__package__, create=True)) / "logs"

        def end(job):
            p = preferences.get()
            if job.state == jobs.DONE:
                r = job.result
                p.check_report = (f"PyTorch {r.get('torch')} on {r.get('device')} ({r.get('device_name')}), "
                                  f"{r.get('free_memory_gb')} GB free, MediaPipe {r.get('mediapipe') or 'missing'}"
                                  f"\nPython {r.get('python')}")
            else:
                p.check_report = f"Engine check failed: {job.error or job.status}"

        job = jobs.Job(label="Check engine", steps=[engine.info(python)], log_path=jobs.new_log_path(log_dir, "check"),
                       env=engine.engine_env(prefs.device), cwd=engine.VENDOR_DIR, device="check", on_end=end)
        jobs.MANAGER.submit(job)
        ensure_timer()
        if job.state == jobs.FAILED:
            prefs.check_report = job.error
            raise OpError(job.error)
        return "Checking the engine"


# ----------------------------------------------------------------------------------------------------------------
# pose
# ----------------------------------------------------------------------------------------------------------------
ROLES = (("TARGET", "Target", "The person to learn"), ("SOURCE", "Source", "The motion to transfer"))


class EDN_OT_extract_pose(_Op, bpy.types.Operator):
    """Detect the person's pose in every frame of a movie or image strip (runs the engine in the background)"""

    bl_idname = "edn.extract_pose"
    bl_label = "Extract Pose"

    strip: StringProperty(name="Strip", options={"SKIP_SAVE"},
                          description="Strip name (empty: the panel's choice, else the active strip)")
    role: EnumProperty(name="Role", items=ROLES, default="TARGET")
    output: StringProperty(name="Output", subtype="FILE_PATH", options={"SKIP_SAVE"},
                           description="Track to write (empty: in the project folder)")

    @classmethod
    def poll(cls, context):
        scene = compat.sequencer_scene(context)
        if scene is not None and scene.sequence_editor is None:
            cls.poll_message_set(f"Scene '{scene.name}' has no sequencer: add a movie or image strip first")
            return False
        return _poll_scene(cls, context)

    def run(self, context):
        scene = edn_scene(context)
        s = scene.edn
        name = self.strip or (s.target_strip if self.role == "TARGET" else s.source_strip)
        src = sequencer.strip_source(scene, name)
        out = abspath(self.output) if self.output else project_dir(scene) / safe_name(src.name) / "pose.npz"
        mattes = out.parent / "mattes" if self.role == "TARGET" else None
        steps = [engine.pose_extract(engine_python(context), src.media, out, src.first, src.last, mattes)]
        role = self.role

        def done(sc, job):
            if role == "TARGET":
                sc.edn.target_strip, sc.edn.target_track = src.name, str(out)
            else:
                sc.edn.source_kind, sc.edn.source_strip, sc.edn.source_track = "STRIP", src.name, str(out)

        submit(context, scene, f"Extract pose: {src.name}", steps, _scene_cb(scene, done))
        return f"Extracting pose from '{src.name}' ({src.frames} frames)"


def _custom_map(settings) -> armature_pose.BoneMap:
    body = {item.joint: item.bone for item in settings.custom_map if item.bone}
    missing = [j for j in armature_pose.CORE_JOINTS if j not in body]
    if missing:
        raise armature_pose.MappingError(f"the custom bone map has no bone for: {', '.join(missing)}")
    return armature_pose.BoneMap("Custom", body, {})


class EDN_OT_pose_from_armature(_Op, bpy.types.Operator):
    """Project an animated armature through the scene camera into a pose track, frame by frame"""

    bl_idname = "edn.pose_from_armature"
    bl_label = "Pose from Armature"

    armature: StringProperty(name="Armature", options={"SKIP_SAVE"}, description="Armature object (empty: panel)")
    camera: StringProperty(name="Camera", options={"SKIP_SAVE"}, description="Camera object (empty: scene camera)")
    bone_map: EnumProperty(name="Bone Map", items=(("PANEL", "Panel", "The map chosen in the panel"),) + BONE_MAPS,
                           default="PANEL")
    output: StringProperty(name="Output", subtype="FILE_PATH", options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        return _poll_scene(cls, context)

    def run(self, context):
        from .vendor.edn_engine.pose.track import PoseTrack

        scene = context.scene  # the 3D scene with the rig and camera
        settings = edn_scene(context).edn
        name = self.armature or settings.armature or (context.object.name if context.object else "")
        obj = bpy.data.objects.get(name)
        if obj is None or obj.type != "ARMATURE":
            raise OpError(f"'{name}' is not an armature object" if name else "no armature chosen")
        cam_name = self.camera or settings.camera
        camera = bpy.data.objects.get(cam_name) if cam_name else scene.camera
        if camera is None or camera.type != "CAMERA":
            raise OpError(f"scene '{scene.name}' has no camera: add one (or choose a camera) to see the armature"
                          if not cam_name else f"'{cam_name}' is not a camera object")
        key = settings.bone_map if self.bone_map == "PANEL" else self.bone_map
        bones = obj.data.bones.keys()
        bmap = armature_pose.check_map(_custom_map(settings), bones) if key == "CUSTOM" else \
            armature_pose.detect_map(bones, key)
        frames = range(scene.frame_start, scene.frame_end + 1)
        current = scene.frame_current
        try:
            body, hands, face, (w, h) = armature_pose.armature_track_arrays(
                scene, context.evaluated_depsgraph_get, obj, camera, bmap, frames)
        finally:
            scene.frame_set(current)
        out = abspath(self.output) if self.output else \
            project_dir(edn_scene(context)) / safe_name(obj.name) / "pose.npz"
        fps = scene.render.fps / scene.render.fps_base
        PoseTrack(body=body, hands=hands, face=face, width=w, height=h, fps=fps, frame_start=scene.frame_start,
                  source=f"armature:{obj.name}").save(out)
        settings.source_kind, settings.armature, settings.source_track = "ARMATURE", obj.name, str(out)
        if cam_name:
            settings.camera = cam_name
        return f"Wrote {len(frames)} frames of '{obj.name}' ({bmap.name} bones) to {out}"


class EDN_OT_normalize_pose(_Op, bpy.types.Operator):
    """Rescale and move the source motion to the target person's body and position (the paper's normalization)"""

    bl_idname = "edn.normalize_pose"
    bl_label = "Normalize"

    source: StringProperty(name="Source Track", subtype="FILE_PATH", options={"SKIP_SAVE"})
    target: StringProperty(name="Target Track", subtype="FILE_PATH", options={"SKIP_SAVE"})
    output: StringProperty(name="Output", subtype="FILE_PATH", options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        return _poll_scene(cls, context)

    def run(self, context):
        scene = edn_scene(context)
        steps, out = normalize_steps(context, scene, self.source, self.target, self.output)
        submit(context, scene, "Normalize", steps, _scene_cb(scene, lambda sc, job: setattr(
            sc.edn, "normalized_track", str(out))))
        return "Normalizing the source pose"


def normalize_steps(context, scene, source="", target="", output=""):
    s = scene.edn
    src = need_file(source or s.source_track, "source pose track", "extract the source pose first")
    tgt = need_file(target or s.target_track, "target pose track", "extract the target pose first")
    out = abspath(output) if output else src.parent / "normalized.npz"
    return [engine.pose_normalize(engine_python(context), src, tgt, out, out.with_suffix(".json"))], out


class EDN_OT_render_figures(_Op, bpy.types.Operator):
    """Draw the pose track as stick figures and add them as an image strip above the source"""

    bl_idname = "edn.render_figures"
    bl_label = "Stick Figures"

    track: StringProperty(name="Track", subtype="FILE_PATH", options={"SKIP_SAVE"},
                          description="Pose track (empty: the normalized track, else the source track)")
    output: StringProperty(name="Output", subtype="DIR_PATH", options={"SKIP_SAVE"})
    style: EnumProperty(name="Style", items=(("edn", "EDN", "The paper's colours and face"),
                                             ("controlnet", "ControlNet", "OpenPose / ControlNet style")))

    @classmethod
    def poll(cls, context):
        return _poll_scene(cls, context)

    def run(self, context):
        scene = edn_scene(context)
        s = scene.edn
        track = need_file(self.track or s.normalized_track or s.source_track, "pose track",
                          "extract or import a source pose first")
        out = abspath(self.output) if self.output else track.parent / "figures"
        start, channel = source_placement(scene)
        steps = [engine.render(engine_python(context), track, out, s.width, s.height, self.style)]

        def done(sc, job):
            sc.edn.figures_dir = str(out)
            sequencer.add_frames_strip(sc, FIGURES_STRIP, out, FIGURE_FILES, start, channel,
                                       newer_than=job.started_wall)

        submit(context, scene, "Stick figures", steps, _scene_cb(scene, done))
        return f"Drawing stick figures into {out}"


# ----------------------------------------------------------------------------------------------------------------
# train and generate
# ----------------------------------------------------------------------------------------------------------------
class EDN_OT_train(_Op, bpy.types.Operator):
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
        if not _poll_scene(cls, context):
            return False
        if any(j.label.startswith("Train") for j in jobs.MANAGER.active()):
            cls.poll_message_set("A training job is running: cancel it first")
            return False
        return True

    def run(self, context):
        scene = edn_scene(context)
        s = scene.edn
        python = engine_python(context)
        src = sequencer.strip_source(scene, self.strip or s.target_strip)
        root = project_dir(scene) / safe_name(src.name)
        dataset, run_dir = root / "dataset", root / "run"  # one target person per folder
        if self.resume and not run_dir.is_dir():
            raise OpError(f"there is no training run to resume at {run_dir}: press Train first")
        device = preferences.get(context).device
        steps = []
        if not (dataset / "manifest.json").is_file():
            track = abspath(s.target_track) if s.target_track and s.target_strip == src.name else None
            if track is not None and not track.is_file():
                track = None
            mattes = track.parent / "mattes" if track is not None and (track.parent / "mattes").is_dir() else None
            steps.append(engine.dataset_build(python, src.media, dataset, s.width, s.height, track,
                                              src.first, src.last, mattes))
        minutes = s.train_minutes if self.minutes < 0 else self.minutes
        n_steps = s.train_steps if self.steps < 0 else self.steps
        steps.append(engine.train(python, dataset, run_dir, s.profile, minutes, n_steps, self.resume, device,
                                  s.perceptual))

        def done(sc, job):
            sc.edn.dataset_dir, sc.edn.run_dir = str(dataset), str(run_dir)

        def end(sc, job):  # a cancelled run has a checkpoint to resume from
            if job.state == jobs.CANCELLED and run_dir.is_dir():
                sc.edn.dataset_dir, sc.edn.run_dir = str(dataset), str(run_dir)

        job = submit(context, scene, "Train" + (" (resume)" if self.resume else ""), steps, _scene_cb(scene, done))
        inner_end, cb = job.on_end, _scene_cb(scene, end)
        job.on_end = lambda j: (cb(j), inner_end(j))
        return f"Training on '{src.name}' (log: {job.log_path})"


def generate_steps(context, scene, run_dir="", track="", output=""):
    s = scene.edn
    run = need_file(run_dir or s.run_dir, "training run", "train on the target first")
    trk = need_file(track or s.normalized_track or s.source_track, "pose track", "extract the source pose first")
    out = abspath(output) if output else trk.parent / "generated"
    return [engine.generate(engine_python(context), run, trk, out, preferences.get(context).device)], out


def _add_result(scene, out: Path, job: jobs.Job):
    start, channel = source_placement(scene)
    scene.edn.output_dir = str(out)
    sequencer.add_frames_strip(scene, RESULT_STRIP, out, FRAME_FILES, start, channel, alpha_over=True,
                               newer_than=job.started_wall)


class EDN_OT_generate(_Op, bpy.types.Operator):
    """Make the target person perform the source motion; the RGBA frames come back as a strip above the source"""

    bl_idname = "edn.generate"
    bl_label = "Generate"

    run_dir: StringProperty(name="Run", subtype="DIR_PATH", options={"SKIP_SAVE"})
    track: StringProperty(name="Track", subtype="FILE_PATH", options={"SKIP_SAVE"})
    output: StringProperty(name="Output", subtype="DIR_PATH", options={"SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        return _poll_scene(cls, context)

    def run(self, context):
        scene = edn_scene(context)
        steps, out = generate_steps(context, scene, self.run_dir, self.track, self.output)
        source_placement(scene)  # fail now, not after generating, if the source strip is gone
        submit(context, scene, "Generate", steps, _scene_cb(scene, lambda sc, job: _add_result(sc, out, job)))
        return f"Generating into {out}"


class EDN_OT_transfer(_Op, bpy.types.Operator):
    """Normalize the source pose, draw stick figures and generate, in a row"""

    bl_idname = "edn.transfer"
    bl_label = "Transfer"

    @classmethod
    def poll(cls, context):
        if not _poll_scene(cls, context):
            return False
        s = compat.sequencer_scene(context).edn
        for path, why in ((s.target_track, "Extract the target's pose first"),
                          (s.run_dir, "Train on the target first"),
                          (s.source_track, "Extract the source's pose (strip or armature) first")):
            if not path:
                cls.poll_message_set(why)
                return False
        return True

    def run(self, context):
        scene = edn_scene(context)
        s = scene.edn
        norm_steps, norm = normalize_steps(context, scene)
        run = need_file(s.run_dir, "training run", "train on the target first")
        out = norm.parent / "generated"
        figures = norm.parent / "figures"
        source_placement(scene)
        python = engine_python(context)
        steps = norm_steps + [engine.render(python, norm, figures, s.width, s.height),
                              engine.generate(python, run, norm, out, preferences.get(context).device)]

        def done(sc, job):
            sc.edn.normalized_track, sc.edn.figures_dir = str(norm), str(figures)
            _add_result(sc, out, job)

        submit(context, scene, "Transfer", steps, _scene_cb(scene, done))
        return "Transferring the motion"


class EDN_OT_cancel_job(_Op, bpy.types.Operator):
    """Stop an engine job (training saves a checkpoint first)"""

    bl_idname = "edn.cancel_job"
    bl_label = "Cancel"

    job_id: IntProperty(name="Job", default=0, description="Job to stop (0: every running job)")

    @classmethod
    def poll(cls, context):
        if not jobs.MANAGER.active():
            cls.poll_message_set("No engine job is running")
            return False
        return True

    def run(self, context):
        targets = jobs.MANAGER.active() if not self.job_id else [j for j in jobs.MANAGER.active()
                                                                    if j.id == self.job_id]
        if not targets:
            raise OpError(f"there is no running job {self.job_id}")
        for job in targets:
            jobs.cancel(job)
        return f"Stopping {', '.join(j.label for j in targets)}"


# ----------------------------------------------------------------------------------------------------------------
# bone maps: fill the editable map from a detected one; save and load presets
# ----------------------------------------------------------------------------------------------------------------
def presets_dir() -> Path:
    return Path(bpy.utils.extension_path_user(__package__, create=True)) / "bone_maps"


class EDN_OT_detect_bone_map(_Op, bpy.types.Operator):
    """Fill the editable bone map from the detected rig type"""

    bl_idname = "edn.detect_bone_map"
    bl_label = "Detect Bone Map"

    def run(self, context):
        s = edn_scene(context).edn
        obj = bpy.data.objects.get(s.armature)
        if obj is None or obj.type != "ARMATURE":
            raise OpError("choose an armature first")
        bmap = armature_pose.detect_map(obj.data.bones.keys())
        s.custom_map.clear()
        for joint in armature_pose.MAP_JOINTS:
            item = s.custom_map.add()
            item.joint, item.bone = joint, bmap.body.get(joint, "")
        s.bone_map = "CUSTOM"
        return f"Detected {bmap.name}"


class EDN_OT_save_bone_map(_Op, bpy.types.Operator):
    """Save the editable bone map as a preset"""

    bl_idname = "edn.save_bone_map"
    bl_label = "Save Bone Map Preset"

    name: StringProperty(name="Name", default="My Rig")

    def run(self, context):
        s = edn_scene(context).edn
        path = presets_dir() / f"{safe_name(self.name)}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({i.joint: i.bone for i in s.custom_map}, indent=1), encoding="utf-8")
        tmp.replace(path)
        return f"Saved {path}"

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self)


class EDN_OT_load_bone_map(_Op, bpy.types.Operator):
    """Load a saved bone map preset into the editable map"""

    bl_idname = "edn.load_bone_map"
    bl_label = "Load Bone Map Preset"

    name: StringProperty(name="Name", default="My Rig")

    def run(self, context):
        s = edn_scene(context).edn
        path = presets_dir() / f"{safe_name(self.name)}.json"
        if not path.is_file():
            raise OpError(f"there is no bone map preset {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise OpError(f"cannot read the bone map preset {path}: {exc}") from exc
        s.custom_map.clear()
        for joint, bone in data.items():
            item = s.custom_map.add()
            item.joint, item.bone = str(joint), str(bone)
        s.bone_map = "CUSTOM"
        return f"Loaded {path}"

    def invoke(self, context, event):
        return context.window_manager.invoke_props_dialog(self)


CLASSES = (EDN_OT_setup_engine, EDN_OT_check_engine, EDN_OT_extract_pose, EDN_OT_pose_from_armature,
           EDN_OT_normalize_pose, EDN_OT_render_figures, EDN_OT_train, EDN_OT_generate, EDN_OT_transfer,
           EDN_OT_cancel_job, EDN_OT_detect_bone_map, EDN_OT_save_bone_map, EDN_OT_load_bone_map)
