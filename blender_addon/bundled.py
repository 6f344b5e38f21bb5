"""The engine's numpy-only modules (event reader, project layout, skeleton, pose track), from the engine copy the
extension bundles.

The built extension carries the engine under `vendor/edn_engine` (scripts/build_extension.py), so the add-on
reads the same protocol and layout as the engine it runs. Outside an extension, where this package is installed
beside the engine (`edn demo` runs the add-on's armature projection from a pip-installed engine), there is no
vendor/ folder: the engine beside it is the same version, so that one is used.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def engine_module(name: str) -> ModuleType:
    """`edn_engine.<name>` from vendor/ when the extension bundles it, else from the installed engine."""
    try:
        return importlib.import_module(f"{__package__}.vendor.edn_engine.{name}")
    except ModuleNotFoundError as exc:
        if exc.name not in (f"{__package__}.vendor", f"{__package__}.vendor.edn_engine"):
            raise  # the bundled engine is there but broken: say so instead of using another copy
    return importlib.import_module(f"edn_engine.{name}")
