"""The CPU threading policy (edn_engine/threads.py): what it sets, what it leaves to the user, how it counts
cores, and that every way of starting the engine has it in place before torch loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from addon_import import addon_module
from conftest import ENGINE_PYTHON, REPO
from edn_engine import threads


def test_policy_fills_in_what_is_unset_and_never_overrides_the_user():
    assert threads.policy_env({}, cores=4) == {"GOMP_SPINCOUNT": "100000", "KMP_BLOCKTIME": "0",
                                               "OMP_NUM_THREADS": "4"}
    mine = {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "3"}  # a spin count or block time would override it
    assert threads.policy_env(mine, cores=4) == {}
    assert threads.policy_env({"KMP_BLOCKTIME": "200"}, cores=4) == {"GOMP_SPINCOUNT": "100000", "OMP_NUM_THREADS": "4"}
    assert threads.policy_env({"GOMP_SPINCOUNT": "0"}, cores=4) == {"KMP_BLOCKTIME": "0", "OMP_NUM_THREADS": "4"}


def test_torchrun_processes_share_the_cores():
    assert threads.policy_env({"LOCAL_WORLD_SIZE": "2"}, cores=8)["OMP_NUM_THREADS"] == "4"
    assert threads.policy_env({"LOCAL_WORLD_SIZE": "4"}, cores=2)["OMP_NUM_THREADS"] == "1"
    assert threads.policy_env({"LOCAL_WORLD_SIZE": "junk"}, cores=2)["OMP_NUM_THREADS"] == "2"


def test_unknown_core_count_leaves_the_thread_count_to_torch(monkeypatch):
    monkeypatch.setattr(threads, "physical_cores", lambda: None)
    assert threads.policy_env({}) == {"GOMP_SPINCOUNT": "100000", "KMP_BLOCKTIME": "0"}


def _fake_sys(root: Path, siblings: dict[int, tuple[int, int]], cpu_max: str | None = None) -> Path:
    for cpu, (package, core) in siblings.items():
        topo = root / "devices/system/cpu" / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / "physical_package_id").write_text(f"{package}\n")
        (topo / "core_id").write_text(f"{core}\n")
    if cpu_max is not None:
        (root / "fs/cgroup").mkdir(parents=True)
        (root / "fs/cgroup/cpu.max").write_text(cpu_max)
    return root


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's CPU topology")
def test_physical_cores_counts_smt_siblings_once_within_affinity_and_quota(tmp_path, monkeypatch):
    # 2 packages x 2 cores x 2 hyper-threads: cpu n and n+4 are siblings
    siblings = {cpu: (cpu // 2 % 2, cpu % 2) for cpu in range(8)}
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    assert threads.physical_cores(_fake_sys(tmp_path / "a", siblings)) == 4
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 4, 1})  # taskset: two cores' worth
    assert threads.physical_cores(_fake_sys(tmp_path / "b", siblings)) == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    assert threads.physical_cores(_fake_sys(tmp_path / "c", siblings, "150000 100000\n")) == 2  # 1.5 CPUs -> 2
    assert threads.physical_cores(_fake_sys(tmp_path / "d", siblings, "max 100000\n")) == 4
    assert threads.physical_cores(tmp_path / "e") == 8  # no topology files: each CPU counts


def test_apply_policy_writes_the_environment_it_is_given():
    env = {"OMP_NUM_THREADS": "1"}
    assert threads.apply_policy(env) == {"GOMP_SPINCOUNT": "100000", "KMP_BLOCKTIME": "0"}
    assert env == {"OMP_NUM_THREADS": "1", "GOMP_SPINCOUNT": "100000", "KMP_BLOCKTIME": "0"}


# What the environment held at the moment torch was first imported, recorded by an import hook, then the
# engine's own run (`edn info`, which imports torch) as the entry point under test starts it.
_PROBE = """
import importlib.abc, json, os, sys
seen = {}
class Probe(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not seen:
            seen.update({k: os.environ.get(k) for k in ("GOMP_SPINCOUNT", "KMP_BLOCKTIME", "OMP_NUM_THREADS")})
        return None
sys.meta_path.insert(0, Probe())
sys.argv = ["edn", *{argv}]
import runpy
try:
    {start}
except SystemExit:
    pass
import torch
print(json.dumps({"seen": seen, "threads": torch.get_num_threads()}))
"""


@pytest.mark.parametrize("start", ["runpy.run_module('edn_engine', run_name='__main__')",  # python -m edn_engine
                                   "from edn_engine.cli import main; main()"])  # the `edn` entry point
@pytest.mark.parametrize("argv, spin", [
    (["info", "--device", "cpu"], "100000"),
    (["generate", "--device", "cpu"], "10000"),  # refusing its missing arguments, after the policy is set
    (["transfer", "--source", "no such clip.mp4", "-o", "out"], "100000"),  # trains: training's policy
    (["transfer", "--source", "no such clip.mp4", "--run", "no run", "-o", "out"], "10000"),  # only generates
], ids=["info", "generate", "transfer", "transfer-run"])
def test_every_entry_point_sets_the_policy_before_torch_loads(start, argv, spin, tmp_path):
    """Each command gets its own spin count, set before torch loads (each call here fails: `generate` on its
    missing arguments, `transfer` on a missing clip or run)."""
    env = {k: v for k, v in os.environ.items() if k not in (*threads.POLICY_VARS, "OMP_WAIT_POLICY")}
    env["PYTHONPATH"] = str(REPO)
    argv = [str(tmp_path / a) if a in ("out", "no run") else a for a in argv] + ["--json"]
    code = _PROBE.replace("{start}", start).replace("{argv}", json.dumps(argv))
    out = subprocess.run([ENGINE_PYTHON, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    cores = threads.physical_cores()
    if cores and spin == "10000":  # generating: a share of the cores is left to the frame writers
        cores = threads.generator_threads(cores)
    assert probe["seen"] == {"GOMP_SPINCOUNT": spin, "KMP_BLOCKTIME": "0",
                             "OMP_NUM_THREADS": str(cores) if cores else None}
    if cores:
        assert probe["threads"] == cores


def test_generating_leaves_the_frame_writers_their_cores(monkeypatch):
    """On 2 cores the generator runs one thread beside two frame writers (see threads.py); a GPU's writers take all
    but one core."""
    for cores, want in ((1, "1"), (2, "1"), (4, "2"), (8, "4")):
        assert threads.policy_env({}, cores=cores, command="generate")["OMP_NUM_THREADS"] == want
        assert threads.policy_env({}, cores=cores, command="eval")["OMP_NUM_THREADS"] == want
        assert threads.policy_env({}, cores=cores, command="train")["OMP_NUM_THREADS"] == str(cores)
    assert [threads.frame_writers(n) for n in (1, 2, 3, 4, 8, 64)] == [1, 2, 1, 2, 4, 4]  # one more beside one thread
    assert threads.frame_writers(16, generator_on_cpu=False) == 8 and threads.frame_writers(2, False) == 1
    assert threads.frame_writers(2, threads=2) == 1  # the user's OMP_NUM_THREADS=2: no writer displaces the team
    assert threads.chosen_threads("generate") is None  # no policy chosen in this process: torch's own
    monkeypatch.setattr(threads, "_CHOSEN", {"OMP_NUM_THREADS": "2"})  # as `edn transfer` on 2 cores
    monkeypatch.setattr(threads, "physical_cores", lambda: 2)
    assert threads.chosen_threads("generate") == 1


def test_generate_spins_less_than_training():
    """`edn generate` shares the cores with its frame writer: a tenth of training's spin (see threads.py)."""
    for command in ("generate", "eval"):
        assert threads.policy_env({}, cores=2, command=command)["GOMP_SPINCOUNT"] == "10000"
    for command in ("train", "transfer", "demo", None):
        assert threads.policy_env({}, cores=2, command=command)["GOMP_SPINCOUNT"] == "100000"
    assert "GOMP_SPINCOUNT" not in threads.policy_env({"OMP_WAIT_POLICY": "PASSIVE"}, cores=2, command="generate")


def test_the_addon_leaves_the_policy_to_the_engine_and_passes_the_users_on(monkeypatch):
    """The engine picks the policy per command (`edn_engine.cli`); what the user set in Blender's environment
    reaches it, and so wins there."""
    for k in (*threads.POLICY_VARS, "OMP_WAIT_POLICY"):
        monkeypatch.delenv(k, raising=False)
    env = addon_module("engine").engine_env("CPU")
    assert not any(k in env for k in threads.POLICY_VARS)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert addon_module("engine").engine_env("CPU")["OMP_WAIT_POLICY"] == "ACTIVE"


def test_an_isa_held_to_avx2_computes_in_fp32(monkeypatch):
    """ONEDNN_MAX_CPU_ISA=AVX2 (a CPU without bf16, emulated by the benchmarks and the demo) turns bf16 autocast
    off: bf16 would otherwise be emulated, slower than fp32."""
    import torch

    from edn_engine import device as devices

    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    devices.cpu_has_native_bf16.cache_clear()
    try:
        assert not devices.cpu_has_native_bf16()
        assert not devices.bf16_supported(torch.device("cpu"))
    finally:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
        devices.cpu_has_native_bf16.cache_clear()
