"""Add-on preferences: which Python runs the engine, on which device; engine set-up and check results."""

from __future__ import annotations

from pathlib import Path

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from . import engine, torch_builds

TORCH_BUILDS = (
    ("AUTO", "Auto", "CUDA when an NVIDIA GPU is found (nvidia-smi); Apple's GPU (MPS) on Apple silicon; else CPU"),
    ("CUDA", "CUDA", f"NVIDIA GPUs: PyTorch's {torch_builds.CUDA_TEXT} build, from PyTorch's wheel index"),
    ("ROCM", "ROCm", f"AMD GPUs on Linux: PyTorch's {torch_builds.ROCM_TEXT} build, from PyTorch's wheel index"),
    ("CPU", "CPU", "The processor only (the smallest download)"))


def default_venv_dir() -> Path:
    """The engine's own virtual environment, in the extension's user folder (kept across updates)."""
    return Path(bpy.utils.extension_path_user(__package__, create=True)) / "engine-venv"


class EDN_Preferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    engine_mode: EnumProperty(name="Engine Python", items=(
        ("VENV", "EDN Environment", "A virtual environment made by 'Set up engine' in the extension's folder"),
        ("CUSTOM", "Existing Python", "Any Python that has requirements/engine.txt installed")), default="VENV")
    venv_dir: StringProperty(name="Environment Folder", subtype="DIR_PATH",
                             description="Where 'Set up engine' creates the environment (empty: extension folder)")
    base_python: StringProperty(name="Base Python", subtype="FILE_PATH",
                                description="Python 3.11 or 3.12 that creates the environment (empty: one found on "
                                            "this computer, else one downloaded with uv; never Blender's own)")
    torch_build: EnumProperty(name="PyTorch Build", items=TORCH_BUILDS, default="AUTO",
                              description="Which PyTorch 'Set up engine' installs")
    torch_index: StringProperty(name="PyTorch Index", default=torch_builds.PYTORCH_INDEX,
                                description="PyTorch's wheel index, for the CUDA, ROCm and Linux CPU builds (empty: "
                                            "PyPI's torch, as pip is configured, e.g. behind a mirror)")
    offer_cpu: BoolProperty(name="Offer the CPU Build", default=False, options={"HIDDEN", "SKIP_SAVE"},
                            description="The last set-up asked for a GPU build this computer cannot run")
    custom_python: StringProperty(name="Python", subtype="FILE_PATH",
                                  description="An existing Python executable with the engine requirements")
    device: EnumProperty(name="Device", items=(
        ("AUTO", "Auto", "CUDA, then Apple MPS, then CPU"), ("CUDA", "CUDA", "An NVIDIA GPU"),
        ("CPU", "CPU", "The processor"), ("MPS", "MPS", "An Apple GPU")), default="AUTO")
    check_report: StringProperty(name="Engine Check", description="What the engine reported last time it was checked")

    def venv_path(self) -> Path:
        return Path(bpy.path.abspath(self.venv_dir)) if self.venv_dir else default_venv_dir()

    def python(self) -> str:
        """The engine Python's path (it may not exist yet: jobs check before starting)."""
        if self.engine_mode == "CUSTOM":
            return bpy.path.abspath(self.custom_python) if self.custom_python else ""
        return str(engine.venv_python(self.venv_path()))

    def setup_base_python(self) -> str:
        """The Python the artist picked to create the environment ("" : find or provision one)."""
        return bpy.path.abspath(self.base_python) if self.base_python else ""

    def draw(self, context):
        from . import jobs  # the set-up job's progress shows here

        layout = self.layout
        layout.prop(self, "engine_mode", expand=True)
        if self.engine_mode == "VENV":
            layout.prop(self, "venv_dir")
            layout.prop(self, "base_python")
            layout.prop(self, "torch_build")
            layout.prop(self, "torch_index")
            row = layout.row()
            row.operator("edn.setup_engine", icon="IMPORT")
            if self.offer_cpu:
                row.operator("edn.setup_engine", text="Set up with the CPU Build", icon="IMPORT").torch_build = "CPU"
            for job in jobs.MANAGER.jobs:
                if job.lane == jobs.SETUP:
                    _draw_setup_job(layout, job)
        else:
            layout.prop(self, "custom_python")
        layout.prop(self, "device")
        row = layout.row()
        row.operator("edn.check_engine", icon="CHECKMARK")
        if self.check_report:
            from .panels import wrap

            col = layout.column(align=True)
            for line in self.check_report.split("\n"):
                for chunk in wrap(line, 90):
                    col.label(text=chunk)


def _draw_setup_job(layout, job) -> None:
    """The set-up job: its step, progress, the installer's latest line, Cancel; or its error, wrapped."""
    from . import jobs
    from .panels import wrap

    box = layout.box()
    box.label(text=f"{job.label}: {job.status}", icon="ERROR" if job.error else "INFO")
    if not job.finished:
        box.progress(factor=job.fraction, text=f"step {job.step + 1}/{len(job.steps)}")
        if job.last_lines:
            box.label(text=job.last_lines[-1][:120])
        box.operator("edn.cancel_job", text="Cancel").job_id = job.id
    if job.error and job.state == jobs.FAILED:
        col = box.column(align=True)
        for chunk in wrap(job.error, 90):
            col.label(text=chunk)


def get(context=None) -> EDN_Preferences:
    context = context or bpy.context
    return context.preferences.addons[__package__].preferences


CLASSES = (EDN_Preferences,)
