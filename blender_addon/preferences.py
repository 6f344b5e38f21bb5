"""Add-on preferences: which Python runs the engine, on which device; engine set-up and check results."""

from __future__ import annotations

import sys
from pathlib import Path

import bpy
from bpy.props import EnumProperty, StringProperty

from . import engine


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
                                description="Python used to create the environment (empty: Blender's Python, "
                                            "which is only used to run 'venv', never installed into)")
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
        return bpy.path.abspath(self.base_python) if self.base_python else sys.executable

    def draw(self, context):
        from . import jobs  # the set-up job's progress shows here

        layout = self.layout
        layout.prop(self, "engine_mode", expand=True)
        if self.engine_mode == "VENV":
            layout.prop(self, "venv_dir")
            layout.prop(self, "base_python")
            row = layout.row()
            row.operator("edn.setup_engine", icon="IMPORT")
            for job in jobs.MANAGER.jobs:
                if job.device == "setup":
                    box = layout.box()
                    box.label(text=f"{job.label}: {job.status}", icon="ERROR" if job.error else "INFO")
                    if not job.finished:
                        box.progress(factor=job.fraction, text=f"step {job.step + 1}/{len(job.steps)}")
                        box.operator("edn.cancel_job", text="Cancel").job_id = job.id
                    if job.error:
                        box.label(text=job.error)
        else:
            layout.prop(self, "custom_python")
        layout.prop(self, "device")
        row = layout.row()
        row.operator("edn.check_engine", icon="CHECKMARK")
        if self.check_report:
            for line in self.check_report.split("\n"):
                layout.label(text=line)


def get(context=None) -> EDN_Preferences:
    context = context or bpy.context
    return context.preferences.addons[__package__].preferences


CLASSES = (EDN_Preferences,)
