"""`allocator.keep_large_blocks`: after it, a frame's worth of large maps freed and allocated again reuses its
pages instead of faulting fresh ones in (glibc only; run in a fresh process, as the setting is process-wide)."""

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROUNDS = """
import resource
import numpy as np
from edn_engine.allocator import keep_large_blocks

def faults():  # minor page faults of 5 frames' pattern: six 4 MB maps alive at once, then all freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        maps = [np.ones(4 << 20, np.uint8) for _ in range(6)]
        del maps
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults()
default = faults()
kept = keep_large_blocks()
faults()
print(default, kept, faults())
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_large_blocks_are_kept_for_the_next_frame():
    env = {**os.environ, "NUMPY_MADVISE_HUGEPAGE": "0"}  # 4 KB pages, whatever the kernel's huge-page setting
    out = subprocess.run([sys.executable, "-c", ROUNDS], capture_output=True, text=True, check=True, env=env,
                         cwd=Path(__file__).resolve().parents[1]).stdout.split()
    default, kept, after = int(out[0]), out[1] == "True", int(out[2])
    assert kept
    assert default > 5 * 6 * 1000  # the pages of every map (1024 each) faulted in again, frame after frame
    assert after < default // 20
