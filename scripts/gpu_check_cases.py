"""scripts/gpu_check.py's cases: the pose, dataset, train, resume and generate commands it runs, what each
case records and checks (read from the engine's events, its run folder and its memory probes), and the summary."""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import statistics
import sys
from pathlib import Path

from gpu_check_command import Outcome, error_line, run_command
from gpu_check_probe import ENTRY, PROBE_ENV, read_probes

WARMUP_ROWS = 20  # losses.csv rows left out of the median: the first 20 steps' rolling means include step 1

# The tests' tiny networks (tests/tiny_run.py TINY): a CPU step in about a tenth of a second.
TINY = {"ngf": 8, "n_blocks": 1, "max_channels": 64, "ndf": 8, "n_layers_d": 2, "num_d": 2,
        "face_ngf": 8, "face_n_blocks": 1, "face_ndf": 8, "face_n_layers_d": 2}


# ------------------------------------------------------------------------------------------------------------
# reading a run folder
# ------------------------------------------------------------------------------------------------------------
def read_losses(run_dir: Path) -> list[dict]:
    path = run_dir / "losses.csv"
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def step_times(rows: list[dict], first_step: int) -> dict:
    """Median sec_per_step of the rows after `first_step` (this command's), leaving out warm-up rows; per stage too."""
    mine = [r for r in rows if int(r["step"]) > first_step]
    skip = min(WARMUP_ROWS, max(len(mine) - 1, 0))
    steady = mine[skip:]
    out = {"sec_per_step": _median([float(r["sec_per_step"]) for r in steady]), "rows": len(mine),
           "warmup_rows_left_out": skip}
    for stage in ("body", "face"):
        vals = [float(r["sec_per_step"]) for r in steady if r["stage"] == stage]
        out[f"{stage}_sec_per_step"] = _median(vals)
    return out


def losses_finite(rows: list[dict]) -> bool:
    values = [v for r in rows for k, v in r.items() if k[:2] in ("G_", "D_", "F_", "FD") and v]
    return bool(values) and all(math.isfinite(float(v)) for v in values)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 5) if values else None



# ------------------------------------------------------------------------------------------------------------
# the check
# ------------------------------------------------------------------------------------------------------------
class Check:
    def __init__(self, args: argparse.Namespace, env_info: dict, work: Path):
        self.a, self.info, self.work = args, env_info, work
        self.cases: list[dict] = []
        self.python = args.python
        self.cuda = args.device == "cuda"
        self.K = args.nproc
        self.base_env = dict(os.environ, PYTHONUNBUFFERED="1")
        if not self.cuda:  # tiny networks on a shared CPU: one thread each (as the tests do)
            self.base_env.setdefault("OMP_NUM_THREADS", "1")
            self.base_env.setdefault("MKL_NUM_THREADS", "1")
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        self.first_gpu = visible.split(",")[0].strip() if visible else "0"

    # -- commands ----------------------------------------------------------------------------------------------
    def engine(self, args: list, procs: int = 1) -> list[str]:
        args = [str(a) for a in args]
        me = str(ENTRY)
        if procs > 1:
            return [self.python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
                    me, "_engine", *args]
        return [self.python, me, "_engine", *args]

    def env(self, procs: int, probe: Path) -> dict:
        env = dict(self.base_env, **{PROBE_ENV: str(probe)})
        if self.cuda and procs == 1:
            env["CUDA_VISIBLE_DEVICES"] = self.first_gpu  # one GPU, as on a machine that has one
        return env

    def case(self, name: str, kind: str, **fields) -> dict:
        rec = {"name": name, "kind": kind, **fields, "status": "running"}
        self.cases.append(rec)
        say(f"[{len(self.cases)}] {name} ...")
        return rec

    def run(self, rec: dict, args: list, procs: int = 1) -> Outcome:
        probe = self.work / "probe" / rec["name"].replace("/", "_")
        cmd = self.engine(args, procs)
        rec["command"] = cmd
        out = run_command(cmd, self.env(procs, probe), self.a.case_timeout,
                          self.work / "logs" / (rec["name"].replace("/", "_") + ".log"))
        rec["wall_s"] = round(out.wall_s, 2)
        rec["memory"] = read_probes(probe)
        return out

    def finish(self, rec: dict, out: Outcome | None, problems: list[str]) -> bool:
        if out is not None and (out.rc != 0 or out.timed_out):
            problems = [error_line(out, self.a.case_timeout)] + problems
            rec["rc"] = out.rc
        if problems:
            rec.update(status="failed", error=problems[0])
            if len(problems) > 1:
                rec["other_problems"] = problems[1:]
            if out is not None:
                rec["stderr_tail"] = out.stderr.splitlines()[-25:]
        else:
            rec["status"] = "passed"
        figure = (f", {rec['sec_per_step']} s/step" if rec.get("sec_per_step") else
                  f", {rec['fps']} frames/s" if rec.get("fps") else "")
        say(f"    {rec['status']}" + (f": {rec['error']}" if problems else f" in {rec.get('wall_s')} s{figure}"))
        return not problems

    def skip(self, name: str, kind: str, why: str, **fields) -> None:
        self.cases.append({"name": name, "kind": kind, **fields, "status": "skipped", "reason": why})
        say(f"[{len(self.cases)}] {name}: skipped ({why})")

    def guarded(self, rec: dict, fn) -> bool:
        """Run one case's body; an exception in this script is recorded as the case's failure, not raised."""
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - one case's bug must not stop the others
            return self.finish(rec, None, [f"gpu_check: {type(exc).__name__}: {exc}"])

    # -- stages ------------------------------------------------------------------------------------------------
    def pose(self) -> bool:
        if self.a.track is not None:  # extracted elsewhere (e.g. a GPU machine without MediaPipe)
            self.skip("pose", "pose", f"given: --track {self.a.track} --mattes {self.a.mattes}")
            return True
        rec = self.case("pose", "pose", frames=self.a.frames, clip=str(self.a.clip))

        def body() -> bool:
            out = self.run(rec, ["pose", "extract", self.a.clip, "-o", self.track, "--end", self.a.frames - 1,
                                 "--mattes", self.mattes, "--json"])
            done = out.done or {}
            rec.update(frames_per_s=done.get("frames_per_second"), detection_rate=done.get("detection_rate"))
            return self.finish(rec, out, [] if out.rc or self.track.is_file() else ["no track written"])

        return self.guarded(rec, body)

    def dataset(self, size: tuple[int, int], profile: str) -> bool:
        w, h = size
        rec = self.case(f"dataset-{w}x{h}", "dataset", size=[w, h])

        def body() -> bool:
            out = self.run(rec, ["dataset", "build", self.a.clip, "-o", self.datasets[size], "--size", f"{w}x{h}",
                                 "--track", self.track, "--mattes", self.mattes, "--end", self.a.frames - 1,
                                 "--profile", profile, "--json"])
            done = out.done or {}
            rec.update(framing=done.get("framing"), train_frames=done.get("train_frames"))
            return self.finish(rec, out, [])

        return self.guarded(rec, body)

    def train_args(self, profile: str, dataset: Path, run: Path, steps: int) -> list:
        args = ["train", dataset, "-o", run, "--device", self.a.device, "--steps", steps, "--save-every",
                self.a.steps, "--preview-every", self.a.steps, "--json"]
        if self.a.networks == "tiny":
            args += [x for k, v in TINY.items() for x in ("--set", f"{k}={json.dumps(v)}")]
        return args

    def perceptual_args(self, profile: str, resume: bool = False) -> list:
        """The perceptual loss of a new run (a resume keeps the run's own, but needs the weights file again)."""
        if self.a.networks == "tiny":
            return [] if resume else ["--perceptual", "none"]
        if profile == "cpu":  # L1 by design
            return []
        if self.vgg is not None:
            return ["--vgg-weights", self.vgg]
        return [] if resume else ["--perceptual", "none"]

    def train(self, profile: str, procs: int, run: Path) -> bool:
        name = f"{profile}/train-{procs}"
        rec = self.case(name, "train", profile=profile, processes=procs, steps=self.a.steps)

        def body() -> bool:
            args = self.train_args(profile, self.datasets[self.size_of(profile)], run, self.a.steps)
            out = self.run(rec, args + ["--profile", profile, *self.perceptual_args(profile)], procs)
            return self.finish(rec, out, self.check_training(rec, out, run, 0, self.a.steps, procs))

        return self.guarded(rec, body)

    def resume(self, profile: str, source: Path, run: Path, from_procs: int, to_procs: int) -> bool:
        name = f"{profile}/resume-{from_procs}-to-{to_procs}"
        rec = self.case(name, "resume", profile=profile, from_processes=from_procs, processes=to_procs,
                        resumed_from_step=self.a.steps, steps=2 * self.a.steps)

        def body() -> bool:
            shutil.copytree(source, run)  # the source run stays as it was (generate and the other resume read it)
            args = self.train_args(profile, self.datasets[self.size_of(profile)], run, 2 * self.a.steps)
            out = self.run(rec, args + ["--resume", *self.perceptual_args(profile, True)], to_procs)
            problems = self.check_training(rec, out, run, self.a.steps, 2 * self.a.steps, to_procs)
            logs = [e.get("message", "") for e in out.of("log")]
            if out.rc == 0 and not any(f"(step {self.a.steps})" in m for m in logs):
                problems.append(f"no 'resuming from ... (step {self.a.steps})' log event")
            rows = read_losses(run)
            if out.rc == 0 and [int(r["step"]) for r in rows] != list(range(1, 2 * self.a.steps + 1)):
                problems.append("losses.csv does not hold steps 1..%d once each" % (2 * self.a.steps))
            rec["resumed_on_other_process_count"] = (not problems and out.rc == 0) if from_procs != to_procs else None
            return self.finish(rec, out, problems)

        return self.guarded(rec, body)

    def check_training(self, rec: dict, out: Outcome, run: Path, first: int, last: int, procs: int) -> list[str]:
        done = out.done
        if out.rc != 0:
            return []
        if done is None:
            return ["no done event"]
        rows = read_losses(run)
        rec.update(step_times(rows, first))
        rec.update(done_sec_per_step=done.get("sec_per_step"), train_seconds=done.get("seconds"),
                   device=done.get("device"), face_stage=done.get("face_stage"), losses_finite=losses_finite(rows))
        if rec.get("sec_per_step"):
            rec["pairs_per_s"] = round(procs / rec["sec_per_step"], 3)  # batch 1 per process
        problems = []
        if done.get("step") != last:
            problems.append(f"stopped at step {done.get('step')}, not {last} ({done.get('stopped')})")
        if done.get("world_size") != procs:
            problems.append(f"world size {done.get('world_size')}, not {procs}")
        digests = done.get("generator_sha256") or []
        if len(digests) != procs or len(set(digests)) != 1:
            problems.append(f"generator weights differ between processes: {digests}")
        if not rec["losses_finite"]:
            problems.append("a loss in losses.csv is not finite (or none was logged)")
        if not (run / "checkpoints" / f"step_{last:08d}.pt").is_file():
            problems.append(f"no checkpoint step_{last:08d}.pt")
        return problems

    def generate(self, profile: str, run: Path, source_case: str) -> bool:
        rec = self.case(f"{profile}/generate", "generate", profile=profile, run_from=source_case, processes=1)

        def body() -> bool:
            frames_dir = self.work / "generated" / profile
            out = self.run(rec, ["generate", run, self.track, "-o", frames_dir, "--device", self.a.device, "--json"])
            done, problems = out.done or {}, []
            prog = [(t, e) for t, e in out.events if e["event"] == "progress"]
            if len(prog) >= 2 and prog[-1][0] > prog[0][0]:
                rec["fps"] = round((prog[-1][1]["done"] - prog[0][1]["done"]) / (prog[-1][0] - prog[0][0]), 2)
            if out.rc == 0:
                n = done.get("written", 0) + done.get("empty", 0)
                rec.update(frames=done.get("frames"), written=done.get("written"), face_gan=done.get("face_gan"),
                           size=done.get("size"), framing=done.get("framing"), device=done.get("device"),
                           whole_command_fps=round(n / out.wall_s, 2) if out.wall_s else None)
                files = len(list(frames_dir.glob("frame_*.png"))) if frames_dir.is_dir() else 0
                if not n or n != done.get("frames") or files != n:
                    problems.append(f"{files} frame files and {n} frames generated, not the track's "
                                    f"{done.get('frames')}")
            return self.finish(rec, out, problems)

        return self.guarded(rec, body)

    # -- the whole check ---------------------------------------------------------------------------------------
    def size_of(self, profile: str) -> tuple[int, int]:
        if self.a.size != "native":
            return self.a.size
        from edn_engine.models.config import PROFILES as P

        return (P[profile].width, P[profile].height)

    def all(self) -> None:
        self.track, self.mattes = self.a.track or self.work / "track.npz", self.a.mattes or self.work / "mattes"
        sizes = {}
        for p in self.a.profiles:
            sizes.setdefault(self.size_of(p), p)
        self.datasets = {s: self.work / f"dataset_{s[0]}x{s[1]}" for s in sizes}
        self.vgg = self.a.vgg_weights
        if self.vgg is None:
            hub = Path(self.info.get("torch_hub_dir") or "") / "checkpoints" / "vgg19-dcbb9e9d.pth"
            self.vgg = hub if hub.is_file() else None
        have_pose = self.pose()
        ready = {}
        for s, p in sizes.items():
            if have_pose:
                ready[s] = self.dataset(s, p)
            else:
                self.skip(f"dataset-{s[0]}x{s[1]}", "dataset", "no pose track")
                ready[s] = False
        K = self.K
        for p in self.a.profiles:
            runs = self.work / "runs" / p
            one, many = runs / "train-1", runs / f"train-{K}"
            if not ready[self.size_of(p)]:
                for c in dict.fromkeys(("train-1", f"train-{K}", f"resume-{K}-to-1", f"resume-1-to-{K}", "generate")):
                    self.skip(f"{p}/{c}", c.split("-")[0], "no dataset", profile=p)
                continue
            ok1, okk = self.train(p, 1, one), False
            if K == 1:  # one process (train-K is train-1): still prove that a run resumes, on the same count
                if ok1:
                    okk = self.resume(p, one, runs / "resume-1-to-1", 1, 1)
                else:
                    self.skip(f"{p}/resume-1-to-1", "resume", "train-1 failed", profile=p)
            else:
                okk = self.train(p, K, many)
                back = runs / f"resume-{K}-to-1"
                if okk:
                    okk = self.resume(p, many, back, K, 1)
                else:
                    self.skip(f"{p}/resume-{K}-to-1", "resume", f"train-{K} failed", profile=p)
                if ok1:
                    self.resume(p, one, runs / f"resume-1-to-{K}", 1, K)
                else:
                    self.skip(f"{p}/resume-1-to-{K}", "resume", "train-1 failed", profile=p)
            if okk:
                self.generate(p, runs / f"resume-{K}-to-1", f"{p}/resume-{K}-to-1")
            elif ok1:
                self.generate(p, one, f"{p}/train-1")
            else:
                self.skip(f"{p}/generate", "generate", "no trained run", profile=p)

    def summary(self) -> dict:
        """Per profile: step times on 1 and K processes, the resumes, generation speed, peak memory."""
        by = {c["name"]: c for c in self.cases}
        out = {}
        for p in self.a.profiles:
            t1, tk = by.get(f"{p}/train-1", {}), by.get(f"{p}/train-{self.K}", {})
            gen = by.get(f"{p}/generate", {})
            peaks = [c["memory"].get("peak_gpu_mb") for c in self.cases if c.get("profile") == p and c.get("memory")]
            peaks = [x for x in peaks if x is not None]
            s = {"sec_per_step_1": t1.get("sec_per_step"), f"sec_per_step_{self.K}": tk.get("sec_per_step"),
                 f"resume_{self.K}_to_1": by.get(f"{p}/resume-{self.K}-to-1", {}).get("status"),
                 f"resume_1_to_{self.K}": by.get(f"{p}/resume-1-to-{self.K}", {}).get("status"),
                 "generate_fps": gen.get("fps"), "generate_whole_command_fps": gen.get("whole_command_fps"),
                 "peak_gpu_mb": max(peaks) if peaks else None}
            if self.K > 1 and t1.get("pairs_per_s") and tk.get("pairs_per_s"):
                s[f"scaling_{self.K}_over_1"] = round(tk["pairs_per_s"] / t1["pairs_per_s"], 3)
            out[p] = s
        return out


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
