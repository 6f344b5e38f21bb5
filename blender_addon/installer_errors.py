"""Reading an installer's output (pip, uv) for the one line that says what failed, and saying what to do about it.

An installer's last line rarely helps ("hint: See above for details."); the package that failed and why is in
pip's "ERROR: ..." lines or uv's "error:" / "cause:" chain. No bpy here: tests feed these real outputs.
"""

from __future__ import annotations

import re
from pathlib import Path

NETWORK = re.compile(r"NewConnectionError|Name or service not known|Temporary failure in name resolution|"
                     r"nodename nor servname|getaddrinfo failed|ConnectTimeout|ConnectionResetError|ProxyError|"
                     r"dns error|error sending request|Network is unreachable|Connection refused|timed out",
                     re.IGNORECASE)
NO_MATCH_PIP = re.compile(r"No matching distribution found for (\S+)")
NO_MATCH_UV = re.compile(r"Because (\S+?)(?:[=<>!~]=\S+)? has no (?:usable )?wheels", re.IGNORECASE)
DISK_FULL = re.compile(r"No space left on device|\[Errno 28\]|os error 28", re.IGNORECASE)
DENIED = re.compile(r"Permission denied|\[Errno 13\]|os error 13|Read-only file system|\[Errno 30\]", re.I)


def step_output(log_path: Path) -> list[str]:
    """The lines the current (last) step wrote to the job's log: everything after its `$ command` line."""
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    starts = [i for i, ln in enumerate(lines) if ln.startswith("$ ")]
    return lines[starts[-1] + 1:] if starts else lines


def meaningful_line(lines: list[str]) -> str:
    """The line that names the failure: pip's last "ERROR:" line that says the most, else uv's "error:" with its
    deepest "cause:", else the last line that is not a hint or a note."""
    errors = [ln.strip() for ln in lines if ln.startswith("ERROR:")]
    if errors:
        best = next((e for e in reversed(errors) if NO_MATCH_PIP.search(e)), errors[-1])
        return best.removeprefix("ERROR:").strip()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("error:"):
            causes = [ln.strip().removeprefix("cause:").strip() for ln in lines[i + 1:]
                      if ln.strip().startswith("cause:")]
            head = lines[i].removeprefix("error:").strip()
            return f"{head}: {causes[-1]}" if causes else head
    quiet = ("hint:", "note:", "WARNING:", "[notice]")
    return next((ln.strip() for ln in reversed(lines) if ln.strip() and not ln.strip().startswith(quiet)), "")


def unreachable(lines: list[str]) -> str | None:
    """The server an installer could not reach (its host name), or None if nothing failed to connect."""
    text = "\n".join(lines)
    if not NETWORK.search(text):
        return None
    host = re.search(r"https?://([\w.-]+)", text)
    return host.group(1) if host else "the package index"


def explain(lines: list[str], what: str, python_text: str, index_hint: str = "") -> str:
    """A message for a failed installer step: what could not be done, why (the installer's own line), what to do.

    `what` names the step ("install PyTorch (CPU)"), `python_text` the interpreter ("Python 3.11.7"), and
    `index_hint` a way out when a package index cannot be reached (e.g. leaving the PyTorch index empty).
    """
    line = meaningful_line(lines)
    text = "\n".join(lines)
    why = f" ({line})" if line else ""
    if DISK_FULL.search(text):
        return f"could not {what}: the disk is full{why}. Free some space (PyTorch needs several GB) and try again"
    if DENIED.search(text):
        return (f"could not {what}: a folder is not writable{why}. Choose an Environment Folder you can write to "
                f"in the EDN preferences")
    where = unreachable(lines)
    if where:
        return (f"could not {what}: {where} cannot be reached{why}. Check the internet connection (or proxy) and "
                f"try again{index_hint}")
    missing = NO_MATCH_PIP.search(text) or NO_MATCH_UV.search(text)
    if missing:
        return (f"could not {what}: {missing.group(1)} has no binary wheel for {python_text} on this computer{why}. "
                f"EDN never compiles packages during set-up: choose another Base Python (3.11 or 3.12)")
    return f"could not {what}{why}"
