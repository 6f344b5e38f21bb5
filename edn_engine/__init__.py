"""EDN engine: Everybody Dance Now as functions, one per stage (pose, plate, dataset, train, generate, eval), the
pipeline that chains them (`pipeline.py`) and the `edn` command line (`cli.py`, `commands/`).

Never imports bpy: the Blender add-on runs this package as a subprocess (`edn ... --json`).
"""

import os

__version__ = "0.1.0"

# FFmpeg and OpenCV print their own diagnostics to stderr ("moov atom not found", "[ WARN:0] ..."); our EdnError
# says the same in one line naming the file and frame, so they are silenced unless EDN_DEBUG is set. OpenCV reads
# its level when it loads (so here, before any module of the package imports cv2; cv2.setLogLevel is gone from
# OpenCV 5, which a GPU machine's image may carry), and FFmpeg's when OpenCV first opens a video.
if not os.environ.get("EDN_DEBUG"):
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
