"""Download uv's wheel from PyPI and unpack its `uv` program into a folder: the first step of provisioning a Python.

Run as a script by "Set up engine" (`python -I fetch_uv.py --version V --dest DIR`) with whatever Python is at hand
(Blender's own): it only reads the web and writes DEST, installing nothing into that Python. Standard library
only. It speaks the engine's JSON event protocol on stdout (progress, error, done) so the panel shows progress and
the error in words; the wheel's SHA-256 from the index is checked before its program is used.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import stat
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

DEFAULT_INDEX = "https://pypi.org/simple"
CHUNK = 1 << 20


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def platform_tags(system: str = platform.system(), machine: str = platform.machine()) -> list[str]:
    """Wheel platform tags that run here, best first (uv's wheels are py3-none-<platform>)."""
    m = machine.lower()
    arch = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}.get(m, m)
    if system == "Windows":
        return {"x86_64": ["win_amd64"], "aarch64": ["win_arm64", "win_amd64"]}.get(arch, ["win32"])
    if system == "Darwin":
        return ["macosx_11_0_arm64"] if arch == "aarch64" else ["macosx_10_12_x86_64"]
    libc = "musllinux" if platform.libc_ver()[0] not in ("glibc", "") else "manylinux"
    return [f"{libc}_{v}_{arch}" for v in ("2_17", "2_28", "1_1")] + [f"manylinux2014_{arch}"]


def choose_wheel(files: list[dict], version: str, tags: list[str]) -> dict:
    """The index entry of uv `version`'s wheel for the first of `tags` it has."""
    wheels = [f for f in files if f["filename"].startswith(f"uv-{version}-") and f["filename"].endswith(".whl")
              and not f.get("yanked")]
    for tag in tags:
        for f in wheels:
            if tag in f["filename"][:-4].split("-")[-1].split("."):
                return f
    raise LookupError(f"PyPI has no uv {version} wheel for this computer ({platform.system()} {platform.machine()})")


def index_files(index: str, timeout: float) -> list[dict]:
    req = urllib.request.Request(f"{index.rstrip('/')}/uv/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.load(resp)["files"]


def download(url: str, size: int, sha256: str, dest: Path, timeout: float) -> None:
    digest = hashlib.sha256()
    done = 0
    with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as out:
        while chunk := resp.read(CHUNK):
            out.write(chunk)
            digest.update(chunk)
            done += len(chunk)
            emit("progress", done=done // CHUNK, total=max(size // CHUNK, 1), stage="downloading uv (MB)")
    if digest.hexdigest() != sha256:
        raise ValueError(f"the downloaded uv wheel is damaged (SHA-256 {digest.hexdigest()[:12]}..., the index says "
                         f"{sha256[:12]}...): try again")


def unpack(wheel: Path, version: str, dest: Path) -> Path:
    """Copy the wheel's `uv` program into `dest` (atomically: a half-written program is never left there)."""
    name = "uv.exe" if os.name == "nt" else "uv"
    member = f"uv-{version}.data/scripts/{name}"
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / name
    partial = dest / (name + ".partial")
    with zipfile.ZipFile(wheel) as zf, zf.open(member) as src, open(partial, "wb") as out:
        while chunk := src.read(CHUNK):
            out.write(chunk)
    partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--version", required=True)
    ap.add_argument("--dest", required=True, type=Path)
    ap.add_argument("--index", default=os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX,
                    help="a PEP 691 simple index (default: $PIP_INDEX_URL, as for pip behind a mirror, else PyPI)")
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args(argv)
    try:
        files = index_files(args.index, args.timeout)
        wheel = choose_wheel(files, args.version, platform_tags())
        with tempfile.TemporaryDirectory(prefix="edn-uv-") as tmp:
            path = Path(tmp) / wheel["filename"]
            download(wheel["url"], int(wheel.get("size") or 0), wheel["hashes"]["sha256"], path, args.timeout)
            program = unpack(path, args.version, args.dest)
    except urllib.error.HTTPError as exc:
        emit("error", message=f"could not download uv from {args.index}: the server answered {exc.code} {exc.reason}")
        return 3
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        emit("error", message=f"could not download uv from {args.index} ({reason}): no network?")
        return 3
    except (LookupError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        emit("error", message=f"could not get uv {args.version} from {args.index}: {exc}")
        return 3
    except OSError as exc:
        emit("error", message=f"could not write uv into {args.dest}: {exc.strerror or exc}")
        return 3
    emit("done", path=str(program), version=args.version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
