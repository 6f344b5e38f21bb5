"""Shared test fixtures: where the real footage is, and temporary folders whose names have spaces and non-ASCII."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
VIDEO = DATA / "video"
OPENPOSE_FRAMES = DATA / "openpose_frames"
# The Python that runs the engine (torch, mediapipe). The add-on tests on Blender 4.2 run in another venv.
ENGINE_PYTHON = os.environ.get("EDN_ENGINE_PYTHON", sys.executable)


NO_FOOTAGE = f"test footage not found at {DATA} (see ../shared/data/README.md)"
_FOOTAGE_NAMES = re.compile(r"\b(VIDEO|DATA|OPENPOSE_FRAMES|data_dir|tiny_run)\b")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(NO_FOOTAGE)
    return DATA


def pytest_collection_modifyitems(config, items) -> None:
    """Without the shared footage, skip (not fail) the tests of every module that reads it."""
    if DATA.is_dir():
        return
    uses: dict[str, bool] = {}
    for item in items:
        path = str(item.path)
        if path not in uses:
            uses[path] = bool(_FOOTAGE_NAMES.search(Path(path).read_text(encoding="utf-8")))
        if uses[path]:
            item.add_marker(pytest.mark.skip(reason=NO_FOOTAGE))


@pytest.fixture
def odd_dir(tmp_path: Path) -> Path:
    """A temporary folder whose path has a space and non-ASCII characters, as artists' project folders do."""
    d = tmp_path / "Projekt ü 舞"
    d.mkdir()
    return d


# -- one tiny dataset and run for the whole session (see tiny_run.py), shared by the engine's test modules --------
@pytest.fixture(scope="session")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.getbasetemp() / "edn_shared"


@pytest.fixture(scope="session")
def dataset(root) -> Path:
    import tiny_run

    return tiny_run.dataset(root)


@pytest.fixture(scope="session")
def run(root) -> tuple[Path, dict]:
    """The tiny run's folder and its training summary."""
    import tiny_run

    return tiny_run.trained_run(root)
