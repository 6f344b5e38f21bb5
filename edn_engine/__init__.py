"""EDN engine: Everybody Dance Now as pure functions (pose, clean, normalize, render, train, generate).

Never imports bpy: the Blender add-on runs this package as a subprocess (`edn ... --json`).
"""

__version__ = "0.1.0"
