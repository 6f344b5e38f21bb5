"""Pose tracks and the stages that make them: detect, import/export OpenPose JSON, clean, normalize."""

from .track import SCHEMA_VERSION, PoseTrack

__all__ = ["PoseTrack", "SCHEMA_VERSION"]
