"""Kill-and-resume soak test: SIGKILL augkd commands at random or targeted moments, restart them,
and check that the final results are those of an uninterrupted run, that no temporary file is
left and that no worker process outlives its command.

Six surfaces (``--kinds``), all tiny (digits, resnet8, CPU, one thread per process):

* ``teacher``: ``python -m augkd.train teacher --model resnet8 --dataset digits --epochs E ...``
* ``student``: ``python -m augkd.train student --teacher REF_TEACHER --model resnet8 --epochs S
  --dataset digits --aug cutmix ...`` (AGB with its lambda search, the default);
* ``sweep2``: ``python -m augkd.sweep experiments/digits_smoke.yaml --workers 2 --set ...``
  shrunk to one resnet8 -> resnet8 pair: a teacher (in the parent), then 2 T. stddev
  measurements and 2 students shared by 2 worker processes;
* ``tune-sqlite``: ``python -m augkd.tune --teacher REF_TEACHER --model resnet8 --epochs S
  --trials N --sampler random --workers 2 --heartbeat 1 ...`` (the study in OUT/study.db);
* ``tune-pg``: the same on a PostgreSQL study (a throwaway cluster started with initdb/pg_ctl,
  as the ``postgres`` user when root; skipped, with the reason, where it cannot start);
* ``ddp``: the ``student`` command under ``torchrun --nproc-per-node 2`` (gloo on the CPU).

(``sweep``, the one-process sweep of the first soak, can be added with ``--kinds``.)

Every surface first runs twice uninterrupted (the reference, and a check that two uninterrupted
runs agree), while its folder is watched for the ``.*.tmp`` files of augkd's atomic writes
(``augkd.files.atomic_write``: temporary file, fsync, rename). Then trials, each in a fresh
folder: the command starts and is SIGKILLed, restarted and killed again (``--kills-per-trial``),
then restarted until it finishes. Each kill is one of

* ``random``: SIGKILL to the command's process group at a time drawn uniformly over the
  reference's duration (mostly after its imports and data load, sometimes before);
* ``targeted``: SIGKILL to the process group the moment the k-th new temporary file appears,
  i.e. inside an atomic write (k drawn uniformly over the reference's writes);
* ``parent`` (surfaces with worker processes): SIGKILL to the parent process alone, at a random
  time while its workers (sweep/tune workers, torchrun's ranks) run: they must die with it.

Kill times and targets come from ``random.Random(f"{seed}:{kind}:{i}")`` for the i-th kill of a
surface, so the schedule is reproducible. After every kill the processes whose command line
holds the trial's folder are watched for ``--orphan-wait`` seconds: any still running is an
*orphan* (counted, then killed by pid). Trials continue, surface by surface in turn, until every
surface has ``--kills`` landed kills. Restarting is ``python -m augkd.train --resume RUN``
(``torchrun ... -m augkd.train --resume RUN`` for ddp; the original command when the kill came
before config.yaml existed) and the same command for sweeps and tunes.

What "identical" means per surface (a trial is DIFFERENT when any check fails):

* teacher, student, ddp: model.pt weights (every tensor ``torch.equal``), metrics.jsonl and
  summary.json without timings, and agb_search.csv equal to the reference run's;
* sweeps: results.csv and summary.csv (every column but timings), every T. stddev record, the
  report folders' file names and every model.pt of the sweep equal to the reference sweep's;
* tunes: with 2 workers which worker draws which beta for which trial number depends on timing
  (and a restarted worker's sampler starts again from its seed), so the trial table cannot
  equal the reference's. Instead: ``N`` complete trials, or ``N + 1`` (each worker checks the
  count before it starts a trial, so two workers may both start the last one, as with Optuna's
  MaxTrialsCallback; the uninterrupted runs do the same); no trial left running or waiting;
  every trial folder belongs to exactly one complete trial (a killed trial is failed and
  completed once by its retry, in its own folder); every complete trial trained ``S`` epochs,
  and tune.json's ``complete`` and ``search_epochs`` are their count and ``count x S``
  (epochs counted once); every complete trial's model.pt, metrics.jsonl and summary.json are
  identical to an uninterrupted one-process run of the same trial config (same beta), and its
  held-out top-1 and loss in trials.csv are that run's; tune.json's best is the best complete
  row. The reference tunes pass the same checks.

Lost: a trial whose command could not be brought to its end by restarting (FAILED), plus the
sweep jobs and tune trials missing from the final tables.

    nice -n 10 python benchmarks/soak/soak.py --kills 9 --seed 0 --out benchmarks/soak/result.md

Exit status 0 when every trial is identical, nothing was lost, no temporary file was left and no
orphan was seen.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import hashlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SMOKE_SPEC = REPO / "experiments" / "digits_smoke.yaml"
KINDS = ("teacher", "student", "sweep2", "tune-sqlite", "tune-pg", "ddp")
ALL_KINDS = KINDS + ("sweep",)
MULTI = ("sweep2", "tune-sqlite", "tune-pg", "ddp")  # kinds whose parent has worker processes
TRAIN_KINDS = ("teacher", "student", "ddp")
WORKERS = 2  # of sweep2 and the tunes (and torchrun's ranks)
POLL_S = 0.002  # how often a running command's folder is scanned for temporary files
PROC_POLL_S = 0.05  # how often /proc is scanned for a parent kill's workers
NOTE = "note: "  # a difference that is not in any number (e.g. 1 written as 1.0)

#: A tune trial's config run on its own, uninterrupted (the identity reference of a trial).
TRIAL_REFERENCE = """
import sys
from pathlib import Path
from augkd.training.api import train
from augkd.training.run import RunDir
from augkd.trust import trust_folders
trust_folders(False)
cfg = RunDir(Path(sys.argv[1])).read_config()
train(cfg, Path(sys.argv[2]), holdout=True, log=lambda line: None)
"""


# ----------------------------------------------------------------------------------------------
# commands


@dataclasses.dataclass
class Context:
    args: argparse.Namespace
    work: Path
    env: dict[str, str]
    pg_url: str | None = None

    @property
    def ref_teacher(self) -> Path:
        return self.work / "ref" / "teacher" / "out"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun() -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(WORKERS),
            "--master-port", str(_free_port())]


def study_name(out: Path) -> str:
    """A PostgreSQL study of its own for each tune folder (the cluster serves the whole soak)."""
    return "soak-" + hashlib.sha1(str(out).encode()).hexdigest()[:12]


def delete_study(out: Path, ctx: Context) -> None:
    """Drop the PostgreSQL study of tune folder ``out`` (a trial that starts afresh)."""
    import optuna

    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=study_name(out), storage=ctx.pg_url)


def first_command(kind: str, out: Path, ctx: Context) -> list[str]:
    args = ctx.args
    py = [sys.executable, "-m"]
    student = ["augkd.train", "student", "--teacher", str(ctx.ref_teacher), "--model", "resnet8",
               "--epochs", str(args.student_epochs), "--dataset", "digits", "--aug", "cutmix",
               "--no-progress", "--device", "cpu", "--out", str(out)]
    if kind == "teacher":
        return py + ["augkd.train", "teacher", "--model", "resnet8", "--dataset", "digits",
                     "--epochs", str(args.teacher_epochs), "--no-progress", "--device", "cpu",
                     "--out", str(out)]
    if kind == "student":
        return py + student
    if kind == "ddp":
        return _torchrun() + ["-m"] + student
    if kind in ("sweep", "sweep2"):
        return py + ["augkd.sweep", str(SMOKE_SPEC), "--out", str(out), "--device", "cpu",
                     "--no-progress", *(["--workers", str(WORKERS)] if kind == "sweep2" else []),
                     "--set", "pairs=[{teacher: resnet8, student: resnet8}]",
                     f"teacher.epochs={args.teacher_epochs}",
                     f"grid.epochs=[{args.student_epochs}]", "tstddev.epochs=1"]
    command = py + ["augkd.tune", "--teacher", str(ctx.ref_teacher), "--model", "resnet8",
                    "--dataset", "digits", "--device", "cpu", "--no-progress",
                    "--epochs", str(args.tune_epochs), "--trials", str(args.tune_trials),
                    "--sampler", "random", "--workers", str(WORKERS), "--heartbeat", "1",
                    "--out", str(out)]
    if kind == "tune-pg":
        command += ["--storage", str(ctx.pg_url), "--study-name", study_name(out)]
    return command


def resume_command(kind: str, out: Path, ctx: Context) -> list[str]:
    """What continues a killed command: ``--resume`` once the run folder has its config.yaml,
    else the original command (a kill before anything was written: start again); sweeps and
    tunes continue with their own command."""
    if kind in TRAIN_KINDS and (out / "config.yaml").is_file():
        resume = ["augkd.train", "--resume", str(out), "--no-progress"]
        return (_torchrun() + ["-m"] if kind == "ddp" else [sys.executable, "-m"]) + resume
    return first_command(kind, out, ctx)


def is_restart(kind: str, out: Path) -> bool:
    return kind in TRAIN_KINDS and not (out / "config.yaml").is_file()


def shown(command: list[str], out: Path, ctx: Context) -> str:
    """A command as the report shows it: python, relative paths, OUT and REF_TEACHER."""
    words = []
    for i, word in enumerate(command):
        word = "python" if i == 0 else word
        word = word.replace(str(out), "OUT").replace(str(ctx.ref_teacher), "REF_TEACHER")
        if ctx.pg_url:
            word = word.replace(ctx.pg_url, "PG_URL")
        if word.startswith("soak-") and command[i - 1] == "--study-name":
            word = "NAME"
        if command[i - 1] == "--master-port":
            word = "PORT"
        words.append(word.replace(str(REPO) + "/", ""))
    return " ".join(words)


def child_env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONHASHSEED="0", AUGKD_CACHE=str(work / "cache"), PYTHONUNBUFFERED="1")
    return env


# ----------------------------------------------------------------------------------------------
# PostgreSQL: a throwaway cluster (as tests/test_folder_trust.py's postgres_url fixture)


def _find_postgres_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@contextlib.contextmanager
def postgres_cluster() -> Iterator[tuple[str | None, str]]:
    """``(url, "")`` of a throwaway PostgreSQL server on a Unix socket, or ``(None, reason)``
    where none can be started. ``AUGKD_TEST_POSTGRES_URL`` is used when set."""
    given = os.environ.get("AUGKD_TEST_POSTGRES_URL")
    if given:
        yield given, ""
        return
    try:
        import psycopg  # noqa: F401
    except ImportError:
        yield None, "no PostgreSQL driver (pip install \"augkd[postgres]\")"
        return
    initdb, pg_ctl = _find_postgres_bin("initdb"), _find_postgres_bin("pg_ctl")
    if not (initdb and pg_ctl):
        yield None, "no PostgreSQL server (initdb, pg_ctl): apt-get install postgresql"
        return
    as_user: list[str] = []
    owner = None
    if os.geteuid() == 0:  # initdb refuses root
        import pwd

        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            yield None, "running as root and there is no 'postgres' user to run the server"
            return
        as_user = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="augkd-soak-pg-"))
    data, sockets = base / "data", base / "run"
    sockets.mkdir()
    if owner is not None:
        for path in (base, sockets):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    base.chmod(0o755)
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "augkd",
                        "--no-sync"], check=True, capture_output=True, timeout=120)
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(base / "server.log"), "-w",
                        "-t", "60", "-o", f"-k {sockets} -c listen_addresses='' -p 5433",
                        "start"], check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as err:
        detail = (getattr(err, "stderr", b"") or b"").decode(errors="replace")[-300:]
        shutil.rmtree(base, ignore_errors=True)
        yield None, f"could not start a PostgreSQL server: {err} {detail}".strip()
        return
    try:
        yield f"postgresql+psycopg://augkd@/postgres?host={sockets}&port=5433", ""
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# processes, temporaries, running, watching and killing one command


def processes_of(folder: Path) -> dict[int, str]:
    """``{pid: command line}`` of the live processes (not zombies) whose command line names
    ``folder`` (the soak's own process excluded)."""
    needle = (str(folder) + "/").encode()
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry.name}/stat") as f:
                state = f.read().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if needle in cmdline and state != "Z":
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def temporaries(root: Path) -> set[Path]:
    """The ``.*.tmp`` files of an atomic write in progress (or left by a killed one)."""
    found: set[Path] = set()
    if not root.is_dir():
        return found
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.startswith(".") and name.endswith(".tmp"):
                found.add(Path(dirpath) / name)
    return found


@dataclasses.dataclass
class Kill:
    """One planned kill: how and when."""

    mode: str  # random | targeted | parent
    index: int  # the surface's kill number (names its random stream)
    after_s: float | None = None  # random and parent kills
    at_write: int | None = None  # targeted kills (0-based)


@dataclasses.dataclass
class Attempt:
    command: list[str]
    rc: int | None  # None: killed by us
    seconds: float
    log: Path
    writes_seen: int  # distinct temporary files observed while it ran
    kill: Kill | None = None
    first_write_at: float | None = None  # seconds after the start the first one was seen
    killed_at: float | None = None  # seconds after the start
    kill_point: str = ""  # what was happening at the kill
    mid_write: bool = False  # a temporary file of the kill moment survived it (inside a write)
    workers_at_kill: int = 0  # the command's other processes alive at a parent kill
    orphans: list[str] = dataclasses.field(default_factory=list)
    timed_out: bool = False


def run_watched(command: list[str], out: Path, scope: Path, log: Path, env: dict[str, str],
                timeout: float, orphan_wait: float, kill: Kill | None = None) -> Attempt:
    """Run ``command``, watching ``out`` for temporaries, and kill it as ``kill`` says; then
    wait for the processes that name ``scope`` to end (those left are orphans, killed)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    seen: set[Path] = set()
    with open(log, "ab") as handle:
        handle.write(f"$ {' '.join(command)}\n".encode())
        handle.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True)
        attempt = Attempt(command, None, 0.0, log, 0, kill=kill)
        last_proc_scan = 0.0
        try:
            while True:
                rc = proc.poll()
                now = time.perf_counter() - t0
                current = temporaries(out)
                new = current - seen
                seen |= current
                if new and attempt.first_write_at is None:
                    attempt.first_write_at = now
                trigger, victims, parent_only = None, set(), False
                if kill is not None and rc is None:
                    if kill.mode == "targeted" and new and len(seen) > kill.at_write:
                        trigger = f"write #{kill.at_write + 1}: {sorted(new)[0].name}"
                        victims = new
                    elif kill.mode == "random" and now >= kill.after_s:
                        trigger, victims = f"t={now:.2f}s", current
                    elif (kill.mode == "parent" and now >= kill.after_s
                          and now - last_proc_scan >= PROC_POLL_S):
                        last_proc_scan = now
                        workers = [p for p in processes_of(scope) if p != proc.pid]
                        if workers:
                            trigger, victims, parent_only = f"t={now:.2f}s", current, True
                            attempt.workers_at_kill = len(workers)
                if trigger:
                    if parent_only:
                        _kill_parent(proc)
                    else:
                        _kill_group(proc)
                    attempt.killed_at = now
                    alive = [v for v in victims if v.exists()]
                    attempt.mid_write = bool(alive)
                    what = ", ".join(sorted(v.name for v in victims)) if victims else ""
                    attempt.kill_point = trigger + (
                        f" (inside the write of {what})" if alive else
                        f" (the write of {what} had finished)" if victims and kill.mode ==
                        "targeted" else " (no write in progress)")
                    if parent_only:
                        attempt.kill_point += f", parent only, {attempt.workers_at_kill} " \
                                              "worker process(es) alive"
                    break
                if rc is not None:
                    attempt.rc = rc
                    break
                if now > timeout:
                    _kill_group(proc)
                    attempt.timed_out = True
                    attempt.kill_point = f"timed out after {timeout:g} s"
                    break
                time.sleep(POLL_S)
        finally:
            if proc.poll() is None:
                _kill_group(proc)
        attempt.seconds = time.perf_counter() - t0
        attempt.writes_seen = len(seen)
    attempt.orphans = reap_orphans(scope, orphan_wait)
    return attempt


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the command's process group (it was started in a session of its own)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _kill_parent(proc: subprocess.Popen) -> None:
    """SIGKILL the command's own process only (its workers must die with it)."""
    try:
        proc.kill()
    except ProcessLookupError:
        pass
    proc.wait()


def reap_orphans(scope: Path, wait: float) -> list[str]:
    """Wait up to ``wait`` s for the processes naming ``scope`` to end; SIGKILL (by pid) and
    return those still running then: orphans of a command that ended."""
    deadline = time.monotonic() + wait
    left = processes_of(scope)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = processes_of(scope)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while processes_of(scope) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [f"pid {pid}: {cmd[:160]}" for pid, cmd in sorted(left.items())]


def log_tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


# ----------------------------------------------------------------------------------------------
# comparing a finished run with the reference


def _untimed(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _untimed(v) for k, v in obj.items()
                if not (isinstance(k, str) and (any(w in k for w in ("time", "seconds"))
                                                or k.endswith("_s")))}
    if isinstance(obj, list):
        return [_untimed(v) for v in obj]
    return obj


def compare_model(ref: Path, got: Path) -> list[str]:
    import torch

    if not got.is_file():
        return [f"{got.name} missing"]
    a = torch.load(ref, map_location="cpu", weights_only=True)["model"]
    b = torch.load(got, map_location="cpu", weights_only=True)["model"]
    if a.keys() != b.keys():
        return [f"{got.name}: different tensor names"]
    bad = [k for k in a if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape
           or not torch.equal(a[k], b[k])]
    return [f"{got.name}: {len(bad)} of {len(a)} tensors differ (e.g. {bad[0]})"] if bad else []


def compare_run(ref: Path, got: Path, where: str = "") -> list[str]:
    """Differences between two finished train run folders (empty: identical)."""
    problems = [where + p for p in compare_model(ref / "model.pt", got / "model.pt")]
    for name in ("metrics.jsonl", "summary.json"):
        if not (got / name).is_file():
            problems.append(f"{where}{name} missing")
            continue
        if name.endswith(".jsonl"):
            a = [_untimed(json.loads(x)) for x in (ref / name).read_text().splitlines() if x]
            b = [_untimed(json.loads(x)) for x in (got / name).read_text().splitlines() if x]
        else:
            a = _untimed(json.loads((ref / name).read_text()))
            b = _untimed(json.loads((got / name).read_text()))
        if a != b:
            problems.append(f"{where}{name} differs" + (
                f" ({len(a)} vs {len(b)} records)" if isinstance(a, list) else ""))
    search, other = ref / "agb_search.csv", got / "agb_search.csv"
    if search.is_file():
        import pandas as pd

        if not other.is_file():
            problems.append(f"{where}agb_search.csv missing")
        elif not _same_numbers(pd.read_csv(search), pd.read_csv(other)):
            problems.append(f"{where}agb_search.csv: different values")
        elif search.read_text() != other.read_text():  # same numbers, other text
            problems.append(f"{NOTE}{where}agb_search.csv: same values, different text")
    return problems


def _same_numbers(a, b) -> bool:
    """Two all-numeric tables hold the same values (an int column may read back as float)."""
    import numpy as np

    return list(a.columns) == list(b.columns) and a.shape == b.shape and np.array_equal(
        a.to_numpy(dtype=float), b.to_numpy(dtype=float), equal_nan=True)


def compare_sweep(ref: Path, got: Path) -> tuple[list[str], int]:
    """Differences between two finished sweep folders, and the jobs missing from ``got``."""
    import pandas as pd

    problems, lost = [], 0
    if not (got / "results.csv").is_file():
        return ["results.csv missing"], len(pd.read_csv(ref / "results.csv"))
    a, b = pd.read_csv(ref / "results.csv"), pd.read_csv(got / "results.csv")
    lost += max(0, len(a) - len(b))
    cols = [c for c in a.columns if not any(w in c for w in ("time", "seconds"))
            and not c.endswith("_s")]
    keys = [c for c in ("pair", "aug", "mode", "epochs", "seed", "balancer") if c in cols]
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        problems.append(f"results.csv shape/columns differ ({a.shape} vs {b.shape})")
    else:
        a2 = a[cols].sort_values(keys).reset_index(drop=True)
        b2 = b[cols].sort_values(keys).reset_index(drop=True)
        if not a2.equals(b2):
            diff = [c for c in cols if not a2[c].equals(b2[c])]
            problems.append(f"results.csv differs in {', '.join(diff)}")
    if (ref / "summary.csv").is_file():
        if not (got / "summary.csv").is_file():
            problems.append("summary.csv missing")
        else:
            x, y = pd.read_csv(ref / "summary.csv"), pd.read_csv(got / "summary.csv")
            keep = [c for c in x.columns if "time" not in c and "seconds" not in c]
            if list(x.columns) != list(y.columns) or not x[keep].equals(y[keep]):
                problems.append("summary.csv differs")
    files = sorted(str(p.relative_to(ref)) for p in (ref / "results").rglob("*") if p.is_file())
    have = sorted(str(p.relative_to(got)) for p in (got / "results").rglob("*") if p.is_file())
    if files != have:
        problems.append(f"report folders differ: {sorted(set(files) ^ set(have))[:3]}")
    for rec in sorted(ref.rglob("tstddev/**/*.json")):
        other = got / rec.relative_to(ref)
        if not other.is_file():
            problems.append(f"{rec.relative_to(ref)} missing")
            lost += 1
            continue
        x, y = json.loads(rec.read_text()), json.loads(other.read_text())
        if x.get("t_stddev") != y.get("t_stddev") or x.get("group_means") != y.get("group_means"):
            problems.append(f"{rec.relative_to(ref)}: T. stddev differs")
    for model in sorted(ref.rglob("model.pt")):
        run = model.parent
        problems += compare_run(run, got / run.relative_to(ref), f"{run.relative_to(ref)}/")
    return problems, lost


class TrialReferences:
    """Uninterrupted one-process runs of tune trial configs, one per distinct config (beta)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.root = ctx.work / "trial-refs"
        self.made = 0
        self.seconds = 0.0

    def get(self, trial_folder: Path) -> Path:
        text = (trial_folder / "config.yaml").read_bytes()
        out = self.root / hashlib.sha1(text).hexdigest()[:16]
        if (out / "model.pt").is_file() and (out / "summary.json").is_file():
            return out
        shutil.rmtree(out, ignore_errors=True)
        source = self.root / "configs" / out.name
        source.mkdir(parents=True, exist_ok=True)
        (source / "config.yaml").write_bytes(text)
        # the threads a tune worker gets (augkd.cli.run_worker_processes: cores // workers)
        threads = str(max(1, (os.cpu_count() or 1) // WORKERS))
        env = {**self.ctx.env, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", TRIAL_REFERENCE, str(source), str(out)],
                              cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=self.ctx.args.timeout)
        self.seconds += time.perf_counter() - t0
        if done.returncode != 0:
            raise RuntimeError(f"the reference run of {trial_folder} failed: "
                               f"{done.stderr[-1500:]}")
        self.made += 1
        return out


def check_tune(out: Path, ctx: Context, refs: TrialReferences) -> tuple[list[str], int]:
    """Problems of a finished 2-worker tune folder (see the module docstring), and the trials
    lost (asked for but not complete, or started and never completed)."""
    import math

    import pandas as pd

    args = ctx.args
    n, epochs = args.tune_trials, args.tune_epochs
    if not (out / "trials.csv").is_file() or not (out / "tune.json").is_file():
        return ["trials.csv or tune.json missing"], n
    rows = pd.read_csv(out / "trials.csv")
    summary = json.loads((out / "tune.json").read_text())
    problems: list[str] = []
    complete = rows[rows["state"] == "complete"]
    lost = max(0, n - len(complete))
    # each worker checks the count before it starts a trial: with W workers a search may end
    # with up to W - 1 trials more than asked (as Optuna's MaxTrialsCallback)
    if not n <= len(complete) <= n + WORKERS - 1:
        problems.append(f"{len(complete)} complete trials, not {n}..{n + WORKERS - 1}")
    folders = list(complete["folder"])
    unfinished = rows[rows["state"].isin(["running", "waiting"])]
    # two workers that find one trial stale at once may both queue a retry of it; the second
    # fails at once if it ever runs (augkd.tune.search._duplicate_of), so one left waiting
    # after its twin completed costs nothing: a note
    twins = unfinished[(unfinished["state"] == "waiting") & unfinished["folder"].isin(folders)]
    if len(twins):
        problems.append(f"{NOTE}trial(s) {', '.join(map(str, twins['number']))} left waiting: "
                        "second retries of trials whose first retry completed")
    unfinished = unfinished.drop(twins.index)
    if len(unfinished):
        problems.append(f"trial(s) {', '.join(map(str, unfinished['number']))} left "
                        f"{'/'.join(sorted(set(unfinished['state'])))}")
        lost += len(unfinished)
    others = sorted(set(rows["state"]) - {"complete", "fail", "running", "waiting"})
    if others:
        problems.append(f"trial states {others}")
    if len(set(folders)) != len(folders):
        problems.append("a trial folder completed twice: " + ", ".join(
            sorted({f for f in folders if folders.count(f) > 1})))
    for _, row in rows[rows["state"] == "fail"].iterrows():
        if isinstance(row["folder"], str) and row["folder"] not in folders:
            problems.append(f"failed trial {row['number']} ({row['folder']}) never completed")
            lost += 1
    on_disk = sorted(f"trials/{p.name}" for p in (out / "trials").glob("trial-*") if p.is_dir())
    stray = sorted(set(on_disk) - set(folders))
    if stray:
        problems.append(f"trial folder(s) of no complete trial: {', '.join(stray)}")
    if not (complete["epochs"] == epochs).all():
        problems.append(f"complete trials with other than {epochs} epochs: "
                        f"{sorted(set(complete['epochs']))}")
    if (summary.get("search_epochs") != len(complete) * epochs
            or summary.get("complete") != len(complete)):
        problems.append(f"tune.json counts {summary.get('complete')} complete trials and "
                        f"{summary.get('search_epochs')} epochs, not {len(complete)} and "
                        f"{len(complete) * epochs}")
    for _, row in complete.iterrows():
        folder = out / row["folder"]
        if not (folder / "config.yaml").is_file():
            problems.append(f"{row['folder']}: no config.yaml")
            continue
        ref = refs.get(folder)
        problems += compare_run(ref, folder, f"{row['folder']}/")
        last = json.loads((ref / "summary.json").read_text())["last"]
        for column, key in (("holdout_top1", "test_top1"), ("holdout_loss", "test_loss")):
            if not math.isclose(float(row[column]), float(last[key]), rel_tol=0, abs_tol=0):
                problems.append(f"trials.csv: trial {row['number']} {column} {row[column]!r}, "
                                f"its uninterrupted run {last[key]!r}")
    repeats = len(complete) - complete["w_distill"].nunique()
    if repeats:  # not a difference: a restarted worker's sampler draws again from its seed
        problems.append(f"{NOTE}{repeats} of {len(complete)} complete trials repeat a beta "
                        "another complete trial had")
    if len(complete):
        best = complete["holdout_top1"].max()
        if summary.get("best_holdout_top1") != best or summary.get("best_w_distill") not in set(
                complete[complete["holdout_top1"] == best]["w_distill"]):
            problems.append(f"tune.json's best ({summary.get('best_w_distill')}, "
                            f"{summary.get('best_holdout_top1')}) is not the best complete row")
    return problems, lost


def tune_betas(out: Path) -> list[float]:
    import pandas as pd

    if not (out / "trials.csv").is_file():
        return []
    rows = pd.read_csv(out / "trials.csv")
    return sorted(rows[rows["state"] == "complete"]["w_distill"])


def finished(kind: str, out: Path) -> bool:
    if kind in ("sweep", "sweep2"):
        return (out / "results.csv").is_file()
    if kind.startswith("tune"):
        return (out / "tune.json").is_file() and (out / "trials.csv").is_file()
    return (out / "model.pt").is_file() and (out / "summary.json").is_file()


def compare(kind: str, ref: Path, got: Path, ctx: Context,
            refs: TrialReferences) -> tuple[list[str], int]:
    if kind.startswith("tune"):
        return check_tune(got, ctx, refs)
    if kind in ("sweep", "sweep2"):
        return compare_sweep(ref, got)
    problems = compare_run(ref, got)
    return problems, int(any("model.pt missing" in p for p in problems))


# ----------------------------------------------------------------------------------------------
# trials


@dataclasses.dataclass
class Trial:
    index: int
    kind: str
    folder: Path
    attempts: list[Attempt] = dataclasses.field(default_factory=list)
    resumes: int = 0
    restarts: int = 0  # restarts that had to start over (killed before config.yaml)
    fresh_starts: int = 0  # the first attempt finished before its kill: started afresh
    result: str = ""  # identical | DIFFERENT | FAILED
    problems: list[str] = dataclasses.field(default_factory=list)
    leftovers: list[str] = dataclasses.field(default_factory=list)
    lost: int = 0

    @property
    def kills(self) -> list[Attempt]:
        return [a for a in self.attempts if a.killed_at is not None]

    @property
    def orphans(self) -> list[str]:
        return [o for a in self.attempts for o in a.orphans]


@dataclasses.dataclass
class Reference:
    kind: str
    folder: Path
    seconds: float
    writes: int
    first_write_s: float  # when its first atomic write began (the imports and data load end)
    command: str = ""
    problems: list[str] = dataclasses.field(default_factory=list)  # of its own (tunes)
    betas: list[float] = dataclasses.field(default_factory=list)


class Schedule:
    """The kills of each surface: the i-th kill of ``kind`` is drawn from its own stream."""

    def __init__(self, seed: int, refs: dict[str, Reference]) -> None:
        self.seed = seed
        self.refs = refs
        self.counts: dict[str, int] = {}

    def next(self, kind: str) -> Kill:
        i = self.counts.get(kind, 0)
        self.counts[kind] = i + 1
        modes = ("random", "targeted", "parent") if kind in MULTI else ("random", "targeted")
        mode = modes[i % len(modes)]
        rng = random.Random(f"{self.seed}:{kind}:{i}")
        ref = self.refs[kind]
        if mode == "targeted" and ref.writes:
            return Kill(mode, i, at_write=rng.randrange(ref.writes))
        # mostly while the run writes (after its imports and data load), sometimes before
        scale, first = ref.seconds, ref.first_write_s
        start = first * 0.9 if rng.random() < 0.8 or mode == "parent" else 0.05 * scale
        return Kill("random" if mode == "targeted" else mode, i,
                    after_s=rng.uniform(min(start, scale * 0.9), scale))


def run_reference(kind: str, ctx: Context, refs: TrialReferences,
                  name: str = "ref") -> Reference:
    base = ctx.work / name / kind
    out = base / "out"
    command = first_command(kind, out, ctx)
    attempt = run_watched(command, out, base, base / "log.txt", ctx.env, ctx.args.timeout,
                          ctx.args.orphan_wait)
    if attempt.rc != 0 or not finished(kind, out):
        raise SystemExit(f"the reference {kind} run failed (rc {attempt.rc}):\n"
                         f"{log_tail(attempt.log, 20)}")
    ref = Reference(kind, out, attempt.seconds, attempt.writes_seen,
                    attempt.first_write_at or 0.0, shown(command, out, ctx))
    if kind.startswith("tune"):
        ref.problems = [p for p in check_tune(out, ctx, refs)[0] if not p.startswith(NOTE)]
        ref.betas = tune_betas(out)
    ref.problems += [f"left {p.relative_to(out)}" for p in temporaries(out)]
    ref.problems += [f"orphan {o}" for o in attempt.orphans]
    print(f"{'reference' if name == 'ref' else 'second reference'} {kind}: "
          f"{attempt.seconds:.1f} s, {attempt.writes_seen} atomic writes seen"
          + (f"; PROBLEMS: {ref.problems}" if ref.problems else ""), flush=True)
    return ref


def run_trial(index: int, kind: str, ctx: Context, schedule: Schedule,
              refs: TrialReferences) -> Trial:
    args = ctx.args
    folder = ctx.work / "trials" / f"{index:03d}-{kind}"
    trial = Trial(index, kind, folder)
    out = folder / "out"
    ref = schedule.refs[kind]

    def attempt_(command: list[str], kill: Kill | None) -> Attempt:
        n = len(trial.attempts)
        a = run_watched(command, out, folder, folder / f"attempt-{n}.log", ctx.env,
                        args.timeout, args.orphan_wait, kill)
        trial.attempts.append(a)
        return a

    def failed(attempt: Attempt) -> bool:
        if attempt.timed_out:
            trial.result = "FAILED"
            trial.problems.append(f"timed out after {args.timeout:g} s")
            return True
        if attempt.killed_at is None and attempt.rc != 0:
            trial.result = "FAILED"
            trial.problems.append(f"exited with {attempt.rc}: {log_tail(attempt.log, 6)}")
            return True
        return False

    # the first start, killed (started afresh when it finished before its kill came)
    for i in range(3):
        attempt = attempt_(first_command(kind, out, ctx), schedule.next(kind))
        if attempt.killed_at is not None or failed(attempt) or i == 2:
            break
        shutil.rmtree(out, ignore_errors=True)
        if kind == "tune-pg":  # its study lives in the database, not in the folder
            delete_study(out, ctx)
        trial.fresh_starts += 1
    # restarted (and killed again while it has kills to take), until a restart runs to its end
    done = False
    while trial.result != "FAILED" and trial.resumes < args.max_resumes:
        kill = schedule.next(kind) if len(trial.kills) < args.kills_per_trial else None
        if is_restart(kind, out):
            trial.restarts += 1
        trial.resumes += 1
        attempt = attempt_(resume_command(kind, out, ctx), kill)
        if failed(attempt):
            break
        if attempt.killed_at is None:  # ran to its end (exit status 0)
            done = finished(kind, out)
            if not done:
                trial.result = "FAILED"
                trial.problems.append("exited with 0 but did not finish")
            break
    if not done:
        if not trial.result:
            trial.result = "FAILED"
            trial.problems.append(f"not finished after {args.max_resumes} restarts")
        trial.lost = 1
        trial.leftovers = sorted(str(p.relative_to(out)) for p in temporaries(out))
        return trial
    trial.problems, trial.lost = compare(kind, ref.folder, out, ctx, refs)
    trial.leftovers = sorted(str(p.relative_to(out)) for p in temporaries(out))
    real = [p for p in trial.problems if not p.startswith(NOTE)]
    trial.result = "DIFFERENT" if real else "identical"
    return trial


# ----------------------------------------------------------------------------------------------
# report


def _mode(attempt: Attempt) -> str:
    return attempt.kill.mode if attempt.kill else "-"


def render(refs: dict[str, Reference], trials: list[Trial], ctx: Context, seconds: float,
           reproducible: dict[str, list[str]], skipped: dict[str, str],
           trial_refs: TrialReferences) -> str:
    from collections import Counter

    args = ctx.args
    argv = " ".join(sys.argv[1:])
    lines = ["# augkd kill-and-resume soak", "",
             f"`python benchmarks/soak/soak.py {argv}`", "",
             f"Wall time {seconds / 60:.1f} min on {_machine()}; {_commit()}. Each trial "
             f"SIGKILLs a command up to {args.kills_per_trial} times, restarting it after each "
             "kill, then restarts it until it finishes and compares the result with an "
             "uninterrupted run (what *identical* means per surface: `soak.py`'s docstring and "
             "README.md).", ""]
    if skipped:
        lines += [f"Skipped: **{k}**: {_md(v)}" for k, v in skipped.items()] + [""]
    lines += ["## Figures", ""]
    everything = [t for t in trials]
    kills = [a for t in everything for a in t.kills]
    lines += [f"- SIGKILLs: **{len(kills)}** ({Counter(_mode(a) for a in kills)['random']} "
              f"random, {Counter(_mode(a) for a in kills)['targeted']} targeted at an atomic "
              f"write, {Counter(_mode(a) for a in kills)['parent']} to the parent alone), "
              f"{sum(a.mid_write for a in kills)} of them inside a write, over "
              f"{len(everything)} trials",
              f"- lost: **{sum(t.lost for t in everything)}**",
              f"- not identical to the uninterrupted run: "
              f"**{sum(t.result != 'identical' for t in everything)}** "
              f"({sum(t.result == 'DIFFERENT' for t in everything)} DIFFERENT, "
              f"{sum(t.result == 'FAILED' for t in everything)} FAILED)",
              f"- leftover temporary files: **{sum(len(t.leftovers) for t in everything)}**",
              f"- orphan worker processes: **{sum(len(t.orphans) for t in everything)}**", ""]
    lines += ["## References", "",
              "| surface | command | seconds | atomic writes seen | two uninterrupted runs "
              "identical |", "|---|---|---|---|---|"]
    for kind, ref in refs.items():
        check = ("not checked" if kind not in reproducible else
                 "yes" if not reproducible[kind] else "NO: " + "; ".join(reproducible[kind]))
        lines.append(f"| {kind} | `{_md(ref.command)}` | {ref.seconds:.1f} | {ref.writes} | "
                     f"{_md(check)} |")
    tunes = [k for k in refs if k.startswith("tune")]
    if tunes:
        lines += ["", f"Tune trials were checked against {trial_refs.made} uninterrupted "
                  f"one-process runs of their configs ({trial_refs.seconds:.0f} s). The complete "
                  "trials' betas of the reference tunes: " + "; ".join(
                      f"{k}: {', '.join(f'{b:.4g}' for b in refs[k].betas)}" for k in tunes)]
    lines += ["", "## Per surface", "",
              "| surface | trials | kills (random / targeted / parent) | inside a write | "
              "restarts (from scratch) | identical | DIFFERENT | FAILED | lost | leftover .tmp "
              "| orphans | notes |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for kind in list(refs) + ["all"]:
        group = [t for t in trials if kind in ("all", t.kind)]
        if not group:
            continue
        c = Counter(t.result for t in group)
        k = Counter(_mode(a) for t in group for a in t.kills)
        inside = sum(a.mid_write for t in group for a in t.kills)
        lines.append(
            f"| {kind} | {len(group)} | {sum(k.values())} ({k['random']} / {k['targeted']} / "
            f"{k['parent']}) | {inside} | {sum(t.resumes for t in group)} "
            f"({sum(t.restarts for t in group)}) | {c['identical']} | {c['DIFFERENT']} | "
            f"{c['FAILED']} | {sum(t.lost for t in group)} | "
            f"{sum(len(t.leftovers) for t in group)} | {sum(len(t.orphans) for t in group)} | "
            f"{sum(any(p.startswith(NOTE) for p in t.problems) for t in group)} |")
    lines += ["", "## Trials", "",
              "| # | surface | kills: mode, time, where it landed | restarts | result | "
              "details |", "|---|---|---|---|---|---|"]
    for t in trials:
        where = "<br>".join(f"{_mode(a)}, {a.killed_at:.2f} s: {a.kill_point}" for a in t.kills)
        if t.fresh_starts:
            where += f"<br>({t.fresh_starts} start(s) finished before the kill: started afresh)"
        details = "; ".join(t.problems + ([f"left {', '.join(t.leftovers)}"] if t.leftovers
                                          else []) + [f"orphan {o}" for o in t.orphans])
        lines.append(f"| {t.index} | {t.kind} | {_md(where) if where else 'no kill landed'} | "
                     f"{t.resumes} | {t.result} | {_md(details) or '-'} |")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


LOAD_AT_START = _load()


def _machine() -> str:
    return (f"{platform.machine()} Linux, {os.cpu_count()} cores (1-minute load average "
            f"{LOAD_AT_START:.1f} at the start, {_load():.1f} at the end), Python "
            f"{platform.python_version()}, torch {_version('torch')}, optuna "
            f"{_version('optuna')}")


def _version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return "?"


def _commit() -> str:
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "augkd"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "augkd at ?"
    return f"augkd at {head}" + (" + uncommitted changes in augkd/" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=2,
                        help="landed SIGKILLs per surface (trials run until each has them)")
    parser.add_argument("--kills-per-trial", type=int, default=2,
                        help="kills of one command before it may finish")
    parser.add_argument("--seed", type=int, default=0, help="draws kill times and targets")
    parser.add_argument("--out", type=Path, default=None, help="Markdown result file")
    parser.add_argument("--kinds", nargs="+", choices=ALL_KINDS, default=list(KINDS))
    parser.add_argument("--teacher-epochs", type=int, default=3)
    parser.add_argument("--student-epochs", type=int, default=2)
    parser.add_argument("--tune-epochs", type=int, default=2, help="epochs per tune trial")
    parser.add_argument("--tune-trials", type=int, default=4)
    parser.add_argument("--work", type=Path, default=None,
                        help="working folder (default: a temporary one, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per command")
    parser.add_argument("--orphan-wait", type=float, default=15.0,
                        help="seconds a killed command's workers get to die with it")
    parser.add_argument("--max-resumes", type=int, default=6)
    parser.add_argument("--max-trials", type=int, default=40,
                        help="trials per surface at most (kills that never land)")
    parser.add_argument("--no-reference-check", dest="reference_check", action="store_false",
                        help="skip the second uninterrupted run of each surface")
    args = parser.parse_args(argv)
    if min(args.kills, args.kills_per_trial, args.teacher_epochs, args.student_epochs,
           args.tune_epochs, args.tune_trials) < 1:
        parser.error("--kills, --kills-per-trial, epochs and --tune-trials must be >= 1")
    kinds = list(dict.fromkeys(args.kinds))
    work = (args.work or Path(tempfile.mkdtemp(prefix="augkd-soak-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(args, work, child_env(work))
    t0 = time.perf_counter()
    skipped: dict[str, str] = {}
    trials: list[Trial] = []
    with contextlib.ExitStack() as stack:
        if "tune-pg" in kinds:
            ctx.pg_url, reason = stack.enter_context(postgres_cluster())
            if ctx.pg_url is None:
                skipped["tune-pg"] = reason
                kinds.remove("tune-pg")
                print(f"tune-pg skipped: {reason}", flush=True)
        trial_refs = TrialReferences(ctx)
        try:
            refs: dict[str, Reference] = {}
            needs_teacher = any(k != "teacher" for k in kinds)
            for kind in (["teacher"] if needs_teacher or "teacher" in kinds else []) + [
                    k for k in kinds if k != "teacher"]:
                refs[kind] = run_reference(kind, ctx, trial_refs)
            refs = {k: refs[k] for k in kinds}
            reproducible: dict[str, list[str]] = {}
            if args.reference_check:  # two uninterrupted runs must agree, or no trial can
                for kind in kinds:
                    again = run_reference(kind, ctx, trial_refs, name="ref2")
                    problems = (again.problems if kind.startswith("tune") else
                                compare(kind, refs[kind].folder, again.folder, ctx,
                                        trial_refs)[0] + again.problems)
                    reproducible[kind] = problems + refs[kind].problems
                    # the faster of the two durations is the time scale of the random kills
                    refs[kind].seconds = min(refs[kind].seconds, again.seconds)
                    if reproducible[kind]:
                        print(f"the uninterrupted {kind} runs: {reproducible[kind]}")
            schedule = Schedule(args.seed, refs)
            landed = dict.fromkeys(kinds, 0)
            per_kind = dict.fromkeys(kinds, 0)
            index = 0
            while True:
                todo = [k for k in kinds if landed[k] < args.kills
                        and per_kind[k] < args.max_trials]
                if not todo:
                    break
                for kind in todo:
                    trial = run_trial(index, kind, ctx, schedule, trial_refs)
                    trials.append(trial)
                    index += 1
                    per_kind[kind] += 1
                    landed[kind] += len(trial.kills)
                    kills = "; ".join(f"{_mode(a)} {a.kill_point}" for a in trial.kills)
                    extra = [*trial.problems, *(f"left {x}" for x in trial.leftovers),
                             *(f"ORPHAN {x}" for x in trial.orphans)]
                    print(f"trial {trial.index} {kind}: {kills or 'no kill landed'}; "
                          f"{trial.resumes} restart(s) -> {trial.result}"
                          f"{': ' + '; '.join(extra) if extra else ''}", flush=True)
            text = render(refs, trials, ctx, time.perf_counter() - t0, reproducible, skipped,
                          trial_refs)
        finally:
            if args.work is None and not args.keep:
                shutil.rmtree(work, ignore_errors=True)
            else:
                print(f"working folder kept: {work}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"-> {args.out}")
    else:
        print(text)
    ok = all(t.result == "identical" and not t.leftovers and not t.orphans and not t.lost
             for t in trials) and not any(reproducible.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
