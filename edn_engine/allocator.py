"""The C allocator's setting for generation: keep large freed blocks for the next frame instead of handing them
back to the system.

glibc serves a block of 128 KB or more (a 256x256 feature map is 4 MB) from fresh pages of its own, and gives
them back when it is freed; the next frame's map then faults its pages in again, one at a time. A generated frame
allocates and frees dozens of such maps: raising the threshold made the `cpu` generator's int8 frame 13% faster
(47.6 ms against 41.5, one thread, AVX2 with VNNI; training steps 2%, within the noise), and the frame writer's 1080p
frame 68 ms of CPU against 44. Freed memory is then kept, up to 64 MB beyond what is in use (in each of glibc's
arenas: a thread may have its own). Elsewhere (macOS, Windows, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (glibc's malloc.h)


def keep_large_blocks(size: int = 32 << 20) -> bool:
    """Serve blocks under `size` from the heap (32 MB: the most glibc's manual allows) and keep up to twice that
    freed at its top, for the rest of this process; True where glibc took both settings."""
    if not sys.platform.startswith("linux"):
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # the C library this process already runs on
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    served, kept = mallopt(M_MMAP_THRESHOLD, size), mallopt(M_TRIM_THRESHOLD, 2 * size)
    return bool(served) and bool(kept)
