"""Importing the add-on's bpy-free modules the way the extension has them, without registering with Blender."""

from __future__ import annotations

import importlib
import sys
import types
from types import ModuleType

from conftest import REPO

PACKAGE = "edn_addon_under_test"


def addon_module(name: str) -> ModuleType:
    """An add-on module, imported inside the add-on's package (whose __init__, which registers with Blender, is not
    run) with the engine as the package's vendor/edn_engine, here the checkout's."""
    if PACKAGE not in sys.modules:
        for pkg, folder in ((PACKAGE, REPO / "blender_addon"), (f"{PACKAGE}.vendor", REPO)):
            module = types.ModuleType(pkg)
            module.__path__ = [str(folder)]
            sys.modules[pkg] = module
    return importlib.import_module(f"{PACKAGE}.{name}")
