"""EDN engine: Everybody Dance Now as functions, one per stage (pose, plate, dataset, train, generate, eval), the
pipeline that chains them (`pipeline.py`) and the `edn` command line (`cli.py`, `commands/`).

Never imports bpy: the Blender add-on runs this package as a subprocess (`edn ... --json`).
"""

__version__ = "0.1.0"
