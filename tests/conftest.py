"""Shared test fixtures: where the real footage is, and temporary folders whose names have spaces and non-ASCII."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
VIDEO = DATA / "video"
OPENPOSE_FRAMES = DATA / "openpose_frames"
# The Python that runs the engine (torch, mediapipe). The add-on tests on Blender 4.2 run in another venv.
ENGINE_PYTHON = os.environ.get("EDN_ENGINE_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    assert DATA.is_dir(), f"test footage not found at {DATA} (see ../shared/data/README.md)"
    return DATA


@pytest.fixture
def odd_dir(tmp_path: Path) -> Path:
    """A temporary folder whose path has a space and non-ASCII characters, as artists' project folders do."""
    d = tmp_path / "Projekt ü 舞"
    d.mkdir()
    return d
