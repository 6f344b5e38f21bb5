"""Set up engine without Blender's UI: which Python it chooses (real interpreters), which PyTorch build and index,
the commands it builds, how it tells a finished environment from a half-finished one, and its failure messages
(from real installer output). The provisioning path really downloads uv from PyPI; Python downloads cannot work
here (and are pointed at an unreachable mirror so they fail the same way everywhere).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from addon_import import addon_module
from conftest import REPO

pytestmark = pytest.mark.blender
pythons = addon_module("pythons")
builds = addon_module("torch_builds")
plans = addon_module("setup_plan")
setup = addon_module("engine_setup")
errors = addon_module("installer_errors")
jobs = addon_module("jobs")
REQS = REPO / "requirements"
UNREACHABLE = "http://127.0.0.1:9"
CPU_LINUX = builds.resolve("CPU", "Linux", "x86_64", [])


def pyenv_python(version: str) -> Path:
    """A pyenv-installed interpreter (CI and these machines have 3.11, 3.12 and 3.13 there, not on PATH)."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    hits = sorted(root.glob(f"versions/{version}*/bin/python{version}"))
    if not hits:
        pytest.skip(f"no pyenv Python {version} under {root}")
    return hits[-1]


def _interp(path="/opt/py311/bin/python3.11", version=(3, 11, 9)):
    return pythons.Interpreter(path=path, version=version, prefix="/opt/py311", base_prefix="/opt/py311")


def _plan(tmp_path, *, picked="", build="CPU", index=builds.PYTORCH_INDEX, found=True, gpus=(), reqs=REQS):
    found_interp = _interp() if found else None
    return setup.plan(tmp_path / "env ü", picked, build, index, tmp_path / "user", reqs,
                      discover=lambda dirs: (found_interp, []), gpus=list(gpus), system="Linux", machine="x86_64")


# ----------------------------------------------------------------------------------------------------------------
# the interpreter
# ----------------------------------------------------------------------------------------------------------------
def test_real_interpreters_are_probed_and_judged_by_version():
    for version in ("3.11", "3.12"):
        interp = pythons.chosen(str(pyenv_python(version)))
        assert interp.version[:2] == tuple(map(int, version.split("."))) and interp.has_venv and interp.bits == 64
    too_new = pythons.probe(str(pyenv_python("3.13")))
    assert pythons.problem(too_new, "/blender/python", "/blender") == (
        f"{too_new.label} is too new: the engine needs Python 3.11 or 3.12 (its pinned packages, MediaPipe 0.10.21 "
        "among them, have binary wheels only for those). Choose another, or leave Base Python empty to find or "
        "download one")
    old = pythons.Interpreter("/usr/bin/python3.10", (3, 10, 12), "/usr", "/usr")
    assert "Python 3.10.12 (/usr/bin/python3.10) is too old" in pythons.problem(old, "/blender/python", "/blender")
    with pytest.raises(pythons.PythonRefused, match="is Blender's own Python: EDN never installs packages into it"):
        pythons.chosen(sys.executable)  # the Python running these tests plays Blender's


def test_what_is_not_a_python_is_refused_by_name(tmp_path):
    with pytest.raises(pythons.PythonRefused, match=r"nowhere/python3\.11 does not exist"):
        pythons.probe(str(tmp_path / "nowhere" / "python3.11"))
    script = tmp_path / "python3.11"
    script.write_text("#!/bin/sh\necho 'I am not Python' >&2\nexit 3\n")
    script.chmod(0o755)
    with pytest.raises(pythons.PythonRefused, match="python3.11 is not a working Python \\(I am not Python\\)"):
        pythons.probe(str(script))
    no_venv = pythons.Interpreter("/usr/bin/python3.12", (3, 12, 3), "/usr", "/usr", has_venv=False)
    assert "sudo apt install python3.12-venv" in pythons.problem(no_venv, "/b/python", "/b")


def test_the_first_fit_python_is_chosen_and_the_others_are_named(tmp_path):
    """A python3.11 on PATH that is really 3.13 is refused by its version, Blender's own is refused, 3.12 is taken."""
    disguised = tmp_path / "bin" / "python3.11"
    disguised.parent.mkdir()
    disguised.symlink_to(pyenv_python("3.13"))
    real_312 = pyenv_python("3.12")
    interp, passed_over = pythons.find_compatible([[str(disguised)], [sys.executable], [str(real_312)]])
    assert interp is not None and interp.version[:2] == (3, 12) and Path(interp.path).resolve() == real_312.resolve()
    assert "is too new" in passed_over[0] and "is Blender's own Python" in passed_over[1]


def test_candidates_cover_path_the_windows_launcher_and_usual_folders(tmp_path):
    bin_dir, home = tmp_path / "bin", tmp_path / "home"
    bin_dir.mkdir()
    (bin_dir / "python3.11").symlink_to(pyenv_python("3.11"))
    provisioned = tmp_path / "user" / "python" / "cpython-3.11.18-linux-x86_64-gnu" / "bin" / "python3.11"
    provisioned.parent.mkdir(parents=True)
    provisioned.write_text("")
    pyenv_root = pyenv_python("3.12").parents[3]
    env = {"PATH": str(bin_dir), "HOME": str(home), "PYENV_ROOT": str(pyenv_root)}
    found = pythons.candidates(env, "linux", (provisioned.parents[2],))
    assert found[0] == [str(bin_dir / "python3.11")]  # PATH first, 3.11 before 3.12
    assert [str(provisioned)] in found and [str(pyenv_python("3.12"))] in found
    assert found.index([str(provisioned)]) < found.index([str(pyenv_python("3.12"))])

    (bin_dir / "py").write_text("")
    (bin_dir / "py").chmod(0o755)
    local = tmp_path / "AppData" / "Local"
    store = local / "Programs" / "Python" / "Python312" / "python.exe"
    store.parent.mkdir(parents=True)
    store.write_text("")
    win = pythons.candidates({"PATH": str(bin_dir), "USERPROFILE": str(home), "LOCALAPPDATA": str(local)}, "win32")
    assert [str(bin_dir / "py"), "-3.11"] in win and [str(bin_dir / "py"), "-3.12"] in win and [str(store)] in win


# ----------------------------------------------------------------------------------------------------------------
# the PyTorch build
# ----------------------------------------------------------------------------------------------------------------
def test_builds_resolve_per_computer():
    gpu = ["NVIDIA H200, 143771 MiB"]
    index = builds.PYTORCH_INDEX
    cases = [
        (("AUTO", "Linux", "x86_64", gpu), ("CUDA", f"{index}/cu128")),
        (("AUTO", "Windows", "AMD64", gpu), ("CUDA", f"{index}/cu128")),
        (("AUTO", "Linux", "x86_64", []), ("CPU", f"{index}/cpu")),  # PyPI's Linux torch carries CUDA
        (("AUTO", "Windows", "AMD64", []), ("CPU", None)),  # PyPI's Windows torch is the CPU build
        (("AUTO", "Darwin", "arm64", []), ("MPS", None)),
        (("AUTO", "Darwin", "x86_64", []), ("CPU", None)),
        (("ROCM", "Linux", "x86_64", []), ("ROCM", f"{index}/rocm6.4")),
        (("CPU", "Linux", "x86_64", gpu), ("CPU", f"{index}/cpu")),
    ]
    for args, want in cases:
        build = builds.resolve(*args)
        assert (build.kind, build.index_url) == want, args
    mirror = builds.resolve("CUDA", "Linux", "x86_64", gpu, "https://mirror.example/torch/")
    assert mirror.index_url == "https://mirror.example/torch/cu128"
    assert builds.resolve("AUTO", "Linux", "x86_64", [], "").index_url is None  # empty index: PyPI as configured


def test_impossible_builds_are_refused_and_cpu_offered():
    with pytest.raises(builds.BuildError, match="no NVIDIA driver was found .* set up the CPU build") as exc:
        builds.resolve("CUDA", "Windows", "AMD64", [])
    assert exc.value.offer_cpu
    with pytest.raises(builds.BuildError, match="only for Linux"):
        builds.resolve("ROCM", "Windows", "AMD64", [])
    with pytest.raises(builds.BuildError, match="do not exist for macOS"):
        builds.resolve("CUDA", "Darwin", "arm64", ["x"])


def test_nvidia_smi_is_asked_and_its_absence_is_no_gpu(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\n[ \"$1\" = --query-gpu=name,memory.total ] && echo 'NVIDIA H200, 143771 MiB'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert builds.nvidia_gpus() == ["NVIDIA H200, 143771 MiB"]
    fake.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed: no driver' ; exit 9\n")
    assert builds.nvidia_gpus() == []
    fake.unlink()
    assert builds.nvidia_gpus() == []


def test_a_gpu_the_engine_does_not_use_is_warned_about():
    gpu = ["NVIDIA RTX 4090, 24564 MiB"]
    warning = builds.gpu_unused_warning(gpu, "cpu", "2.13.0+cpu")
    assert "NVIDIA RTX 4090" in warning and "CPU-only build" in warning and "CUDA build" in warning
    assert "cannot use it" in builds.gpu_unused_warning(gpu, "cpu", "2.13.0+cu128")
    assert builds.gpu_unused_warning(gpu, "cuda", "2.13.0+cu128") is None
    assert builds.gpu_unused_warning([], "cpu", "2.13.0+cpu") is None


# ----------------------------------------------------------------------------------------------------------------
# the plans
# ----------------------------------------------------------------------------------------------------------------
def test_pins_come_from_the_requirement_files():
    pins = plans.read_pins(REQS)
    assert pins.torch == "torch==2.13.0" and "numpy==1.26.4" in pins.engine and pins.mediapipe == ["mediapipe==0.10.21"]
    assert not any(p.startswith("torch") for p in pins.engine) and "matplotlib>=3.8,<4" in pins.engine


def test_a_found_python_builds_with_pip_checking_wheels_before_any_download(tmp_path):
    gpu = ["NVIDIA H200, 143771 MiB"]
    s = _plan(tmp_path, build="AUTO", gpus=gpu)
    venv, vpy = tmp_path / "env ü", str(plans.venv_python(tmp_path / "env ü"))
    assert s.how == "pip" and s.build.kind == "CUDA" and s.steps[0].argv == [
        "/opt/py311/bin/python3.11", "-m", "venv", "--clear", str(venv)]
    argvs = [st.argv for st in s.steps]
    installs = [a for a in argvs if "install" in a]
    assert all(a[0] == vpy and "--only-binary=:all:" in a for a in installs)  # never compiles, never Blender's
    checks = [i for i, a in enumerate(argvs) if "--dry-run" in a]
    first_download = next(i for i, a in enumerate(argvs)
                          if "install" in a and "--dry-run" not in a and "pip>=24" not in a)
    assert checks and max(checks) < first_download
    assert "mediapipe==0.10.21" in argvs[checks[0]] and "numpy==1.26.4" in argvs[checks[0]]
    torch_step = next(a for a in argvs if "torch==2.13.0" in a and "--dry-run" not in a)
    assert torch_step[-2:] == ["--index-url", "https://download.pytorch.org/whl/cu128"]
    assert "--no-deps" in next(a for a in argvs if "mediapipe==0.10.21" in a and "--dry-run" not in a)
    assert argvs[-1][:2] == [vpy, "-I"] and "import numpy, cv2, skimage, torch, mediapipe" in argvs[-1][-1]
    assert "PyTorch (CUDA 12.8, from https://download.pytorch.org/whl/cu128)" in s.steps[4].label
    assert s.stamp["base"] == "/opt/py311/bin/python3.11" and s.stamp["torch_build"] == "CUDA"


def test_without_a_python_uv_provisions_one_never_touching_blenders(tmp_path):
    s = _plan(tmp_path, found=False)
    assert s.note == "no Python 3.11 or 3.12 found on this computer: downloading one with uv"
    why = ["/usr/bin/python3.11 does not exist", "Python 3.11.2 (/usr/bin/python3.11) cannot create virtual envs"]
    named = setup.plan(tmp_path / "other", "", "CPU", "", tmp_path / "user", REQS, discover=lambda d: (None, why),
                       gpus=[], system="Linux", machine="x86_64")
    assert named.note == ("no Python 3.11 or 3.12 found on this computer (Python 3.11.2 (/usr/bin/python3.11) cannot "
                          "create virtual envs): downloading one with uv")
    user = tmp_path / "user"
    uv = str(user / "uv" / "uv")
    assert s.how == "uv" and s.env["UV_PYTHON_INSTALL_DIR"] == str(user / "python")
    assert "VIRTUAL_ENV" not in s.env and "PYTHONPATH" not in s.env
    fetch, install_python, make_venv = (st.argv for st in s.steps[:3])
    assert fetch[:3] == [sys.executable, "-I", str(plans.FETCH_UV)] and "pip" not in fetch
    assert fetch[fetch.index("--dest") + 1] == str(user / "uv")
    assert install_python == [uv, "python", "install", "--no-bin", "--no-registry", "3.11"]
    assert make_venv == [uv, "venv", "--clear", "--no-project", "--managed-python", "--python", "3.11",
                         str(tmp_path / "env ü")]
    vpy = str(plans.venv_python(tmp_path / "env ü"))
    for st in s.steps[3:-1]:
        assert st.argv[:7] == [uv, "pip", "install", "--python", vpy, "--only-binary", ":all:"]
    torch_step = next(st.argv for st in s.steps if "torch==2.13.0" in st.argv and "--dry-run" not in st.argv)
    assert torch_step[-2:] == ["--index-url", "https://download.pytorch.org/whl/cpu"]
    assert all(st.argv[0] != sys.executable for st in s.steps[1:])


def test_refusals_come_before_anything_runs(tmp_path):
    foreign = tmp_path / "env ü"
    foreign.mkdir()
    (foreign / "my thesis.txt").write_text("precious")
    with pytest.raises(setup.SetupRefused, match="holds no Python environment; EDN will not clear it"):
        _plan(tmp_path)
    assert (foreign / "my thesis.txt").read_text() == "precious"
    (foreign / "my thesis.txt").unlink()
    with pytest.raises(setup.SetupRefused, match="no NVIDIA driver was found") as exc:
        _plan(tmp_path, build="CUDA")
    assert exc.value.offer_cpu
    with pytest.raises(setup.SetupRefused, match="cannot use the Base Python: .* is Blender's own Python"):
        _plan(tmp_path, picked=sys.executable)
    with pytest.raises(setup.SetupRefused, match=r"cannot use the Base Python: Python 3\.13\.\d+ .* is too new"):
        _plan(tmp_path, picked=str(pyenv_python("3.13")))
    subprocess.run([str(pyenv_python("3.11")), "-m", "venv", "--without-pip", str(foreign)], check=True)
    with pytest.raises(setup.SetupRefused, match="lives in the environment being set up"):  # it would clear itself
        _plan(tmp_path, picked=str(plans.venv_python(foreign)))


def test_an_unwritable_folder_is_refused(tmp_path):
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        venv = locked / "env"
    elif Path("/sys").is_dir():  # root writes anywhere on a normal file system; sysfs refuses new folders
        venv = Path("/sys/edn-engine-venv")
    else:
        pytest.skip("no folder here is unwritable for root")
    with pytest.raises(setup.SetupRefused, match=f"the folder {venv} cannot be written .*: choose an Environment "
                                                 "Folder you can write to"):
        setup.plan(venv, "", "CPU", "", tmp_path / "user", REQS, discover=lambda d: (None, []), gpus=[],
                   system="Linux", machine="x86_64")


def test_half_finished_environments_are_rebuilt_and_finished_ones_reused(tmp_path):
    venv = tmp_path / "env ü"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("home = /opt/py311/bin\n")  # an interrupted set-up: no stamp
    s = _plan(tmp_path)
    assert s.how == "pip" and s.note == "repairing a half-finished environment" and "--clear" in s.steps[0].argv
    setup.finish(s, succeeded=False)
    assert plans.read_stamp(venv) is None  # a failed or cancelled set-up is never stamped
    plans.venv_python(venv).parent.mkdir(parents=True)
    plans.venv_python(venv).write_text("")
    setup.finish(s, succeeded=True)
    assert plans.read_stamp(venv)["base"] == "/opt/py311/bin/python3.11"
    reuse = _plan(tmp_path)
    assert reuse.how == "reuse" and [st.label for st in reuse.steps] == ["Checking that the engine's packages import"]
    setup.finish(reuse, succeeded=False)  # the reused environment no longer imports: forget it, rebuild next time
    assert _plan(tmp_path).how == "pip"
    setup.finish(s, succeeded=True)
    other = _plan(tmp_path, index="")  # another PyTorch source: rebuilt
    assert other.how == "pip" and other.note == "rebuilding an out-of-date environment"
    changed = tmp_path / "reqs"
    changed.mkdir()
    (changed / "engine.txt").write_text((REQS / "engine.txt").read_text().replace("tqdm==", "tqdm>="))
    (changed / "mediapipe.txt").write_text((REQS / "mediapipe.txt").read_text())
    assert _plan(tmp_path, reqs=changed).how == "pip"  # a changed pin: rebuilt


# ----------------------------------------------------------------------------------------------------------------
# failure messages from real installer output
# ----------------------------------------------------------------------------------------------------------------
def test_pips_meaningful_line_names_the_package_without_a_wheel():
    py313 = str(pyenv_python("3.13"))
    out = subprocess.run([py313, "-m", "pip", "install", "--dry-run", "--no-deps", "--only-binary=:all:",
                          "--disable-pip-version-check", "mediapipe==0.10.21"], capture_output=True, text=True,
                         timeout=300)
    lines = (out.stdout + out.stderr).splitlines()
    assert out.returncode != 0
    assert errors.meaningful_line(lines) == "No matching distribution found for mediapipe==0.10.21"
    msg = errors.explain(lines, "find wheels for Python 3.13", "Python 3.13.0")
    assert msg.startswith("could not find wheels for Python 3.13: mediapipe==0.10.21 has no binary wheel for "
                          "Python 3.13.0 on this computer (No matching distribution found for mediapipe==0.10.21)")
    assert "never compiles" in msg


def test_an_unreachable_index_is_named():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    out = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
                          "--retries", "1", "--timeout", "5", "--index-url", f"{UNREACHABLE}/simple", "numpy==1.26.4"],
                         capture_output=True, text=True, timeout=300, env={**env, "PIP_CONFIG_FILE": os.devnull})
    msg = errors.explain((out.stdout + out.stderr).splitlines(), "install the engine's packages", "Python 3.11.7",
                         ", or empty 'PyTorch Index'")
    assert msg.startswith("could not install the engine's packages: 127.0.0.1 cannot be reached (")
    assert "numpy==1.26.4" in msg and msg.endswith("try again, or empty 'PyTorch Index'")


def test_disk_and_permission_failures_say_what_to_do():
    full = ["Collecting torch", "ERROR: Could not install packages due to an OSError: [Errno 28] No space left on "
            "device", ""]
    assert errors.explain(full, "install PyTorch (CPU)", "Python 3.11.7") == (
        "could not install PyTorch (CPU): the disk is full (Could not install packages due to an OSError: [Errno "
        "28] No space left on device). Free some space (PyTorch needs several GB) and try again")
    denied = ["error: failed to create directory `/x/env`: Permission denied (os error 13)"]
    assert "a folder is not writable" in errors.explain(denied, "create a virtual environment", "Python 3.11")
    assert errors.meaningful_line(["Downloading x", "hint: See above for details."]) == "Downloading x"


# ----------------------------------------------------------------------------------------------------------------
# provisioning for real: uv from PyPI, then a Python download that cannot happen
# ----------------------------------------------------------------------------------------------------------------
def _run_setup(s, log_dir: Path) -> "jobs.Job":
    manager = jobs.JobManager()
    job = jobs.Job(label="Set up engine", steps=[st.argv for st in s.steps], log_path=log_dir / "setup.log",
                   kind="setup", lane=jobs.SETUP, env=s.env, cwd=log_dir, step_labels=[st.label for st in s.steps],
                   explain=s.explain)
    manager.wait(manager.submit(job), timeout=300)
    setup.finish(s, job.state == jobs.DONE)
    return job


def test_provisioning_fetches_uv_and_says_what_to_do_when_python_cannot_be_downloaded(tmp_path):
    s = _plan(tmp_path, found=False, index="")
    s.env["UV_PYTHON_INSTALL_MIRROR"] = f"{UNREACHABLE}/python-build-standalone"  # fails the same way everywhere
    job = _run_setup(s, tmp_path)
    uv = tmp_path / "user" / "uv" / "uv"
    assert job.state == jobs.FAILED and job.step == 1, job.error  # uv came from PyPI; Python 3.11 could not
    assert subprocess.run([str(uv), "--version"], capture_output=True, text=True).stdout.startswith(
        f"uv {plans.UV_VERSION}")
    assert job.error.startswith("no Python 3.11 or 3.12 was found on this computer, and EDN could not download "
                                "Python 3.11 (")
    assert "127.0.0.1" in job.error and str(job.log_path) in job.error
    assert "install Python 3.11 (python.org, or your package manager)" in job.error
    assert "connect to the internet" in job.error
    assert plans.folder_state(tmp_path / "env ü") == "new" and plans.read_stamp(tmp_path / "env ü") is None
    again = _plan(tmp_path, found=False, index="")  # uv is kept: the next attempt starts at the Python download
    assert again.how == "uv" and again.steps[0].argv[1:3] == ["python", "install"]


def test_no_python_and_no_network_names_both_ways_out(tmp_path):
    s = _plan(tmp_path, found=False, index="")
    s.env["PIP_INDEX_URL"] = f"{UNREACHABLE}/simple"  # where uv's wheel is looked for, as pip behind a mirror
    job = _run_setup(s, tmp_path)
    assert job.state == jobs.FAILED and job.step == 0
    assert job.error.startswith(f"no Python 3.11 or 3.12 was found on this computer, and EDN could not download uv "
                                f"{plans.UV_VERSION} (could not download uv from {UNREACHABLE}/simple (")
    assert "Either install Python 3.11" in job.error and "or connect to the internet" in job.error
    assert not (tmp_path / "user" / "uv" / "uv").exists()


def test_a_cancelled_set_up_is_never_trusted_and_the_next_one_repairs_it(tmp_path):
    """Cancel a real set-up (Python 3.11 found on the machine) once its environment exists: no stamp is written,
    and the next set-up sees a half-finished environment and rebuilds it."""
    real = pythons.chosen(str(pyenv_python("3.11")))
    venv = tmp_path / "env ü"
    s = setup.plan(venv, "", "CPU", "", tmp_path / "user", REQS, discover=lambda d: (real, []), gpus=[],
                   system="Linux", machine="x86_64")
    assert s.how == "pip" and s.steps[0].argv[0] == real.path
    manager = jobs.JobManager()
    job = manager.submit(jobs.Job(label="Set up engine", steps=[st.argv for st in s.steps], kind="setup",
                                  log_path=tmp_path / "setup.log", lane=jobs.SETUP, env=s.env,
                                  step_labels=[st.label for st in s.steps], explain=s.explain))
    statuses = []
    deadline = time.monotonic() + 120
    while job.step < 1 and not job.finished and time.monotonic() < deadline:
        manager.poll_all()
        statuses.append(job.status)
        time.sleep(0.05)
    assert job.state == jobs.RUNNING and job.status == "Updating pip", (job.state, job.error)
    assert statuses[0].startswith("Creating the environment with Python 3.11.")  # each step shows what it does
    jobs.cancel(job)
    manager.wait(job, timeout=60)
    setup.finish(s, job.state == jobs.DONE)
    assert job.state == jobs.CANCELLED and plans.folder_state(venv) == "partial"
    again = setup.plan(venv, "", "CPU", "", tmp_path / "user", REQS, discover=lambda d: (real, []), gpus=[],
                       system="Linux", machine="x86_64")
    assert again.how == "pip" and again.note == "repairing a half-finished environment"
