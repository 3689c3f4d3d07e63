"""Kill-and-resume soak test: SIGKILL augkd runs at random or targeted moments, resume them, and
check that the final results are bit-identical to an uninterrupted reference.

Three kinds of run, all tiny (digits, resnet8, CPU, one thread):

* ``teacher``: ``python -m augkd.train teacher --model resnet8 --dataset digits --epochs E ...``
* ``student``: ``python -m augkd.train student --teacher REF_TEACHER --model resnet8 --epochs 2
  --dataset digits --aug cutmix ...`` (AGB with its lambda search, the default);
* ``sweep``: ``python -m augkd.sweep experiments/digits_smoke.yaml --set ...`` shrunk to one
  resnet8 -> resnet8 pair, short teacher, two students, T. stddev of one epoch.

First every kind runs once uninterrupted (the reference; its atomic writes are counted by
watching for ``.*.tmp`` files). Then ``--kills`` trials, each in a fresh folder: the same command
is started and SIGKILLed either at a random time (uniform over the reference's duration, drawn
from ``--seed``) or *targeted*, the moment the k-th atomic write's temporary file appears (k
drawn from the seed), i.e. inside the write. The run is then resumed until it finishes
(``python -m augkd.train --resume RUN_DIR``, or the original command if the kill came before
config.yaml existed; the same sweep command for sweeps) and compared with the reference:

* model.pt weights of every run (``torch.load(weights_only=True)``, every tensor ``torch.equal``);
* metrics.jsonl and summary.json without timings, agb_search.csv of students;
* sweeps: results.csv (pandas, every column but timings), every T. stddev record's value and
  group means, every model.pt of the sweep folder;
* no ``.*.tmp`` file left anywhere once the run finished.

    nice -n 19 python benchmarks/soak/soak.py --kills 20 --seed 0 --out benchmarks/soak/result.md

Exit status 0 when every trial finished identical to the reference and left no temporaries.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SMOKE_SPEC = REPO / "experiments" / "digits_smoke.yaml"
KINDS = ("teacher", "student", "sweep")
POLL_S = 0.002  # how often a running command's folder is scanned for temporary files
NOTE = "note: "  # a difference that is not in any number (e.g. 1 written as 1.0)


# ----------------------------------------------------------------------------------------------
# commands


def train_command(kind: str, out: Path, ref_teacher: Path, args: argparse.Namespace) -> list[str]:
    py = [sys.executable, "-m"]
    if kind == "teacher":
        return py + ["augkd.train", "teacher", "--model", "resnet8", "--dataset", "digits",
                     "--epochs", str(args.teacher_epochs), "--no-progress", "--device", "cpu",
                     "--out", str(out)]
    if kind == "student":
        return py + ["augkd.train", "student", "--teacher", str(ref_teacher), "--model",
                     "resnet8", "--epochs", str(args.student_epochs), "--dataset", "digits",
                     "--aug", "cutmix", "--no-progress", "--device", "cpu", "--out", str(out)]
    return py + ["augkd.sweep", str(SMOKE_SPEC), "--out", str(out), "--device", "cpu",
                 "--no-progress", "--set", "pairs=[{teacher: resnet8, student: resnet8}]",
                 f"teacher.epochs={args.teacher_epochs}",
                 f"grid.epochs=[{args.student_epochs}]", "tstddev.epochs=1"]


def resume_command(kind: str, out: Path, first: list[str]) -> list[str]:
    """What continues a killed run: ``--resume`` once the run folder has its config.yaml,
    else the original command (a kill before anything was written: start again)."""
    if kind != "sweep" and (out / "config.yaml").is_file():
        return [sys.executable, "-m", "augkd.train", "--resume", str(out), "--no-progress"]
    return first


def child_env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               PYTHONHASHSEED="0", AUGKD_CACHE=str(work / "cache"), PYTHONUNBUFFERED="1")
    return env


# ----------------------------------------------------------------------------------------------
# running, watching and killing one command


def temporaries(root: Path, recursive: bool) -> set[Path]:
    """The ``.*.tmp`` files of an atomic write in progress (or left by a killed one)."""
    found: set[Path] = set()
    if not root.is_dir():
        return found
    if not recursive:
        try:
            with os.scandir(root) as it:
                for e in it:
                    if e.name.startswith(".") and e.name.endswith(".tmp"):
                        found.add(Path(e.path))
        except FileNotFoundError:
            pass
        return found
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.startswith(".") and name.endswith(".tmp"):
                found.add(Path(dirpath) / name)
    return found


@dataclasses.dataclass
class Attempt:
    command: list[str]
    rc: int | None  # None: killed by us
    seconds: float
    log: Path
    writes_seen: int  # distinct temporary files observed while it ran
    first_write_at: float | None = None  # seconds after the start the first one was seen
    killed_at: float | None = None  # seconds after the start
    kill_point: str = ""  # what was happening at the kill
    mid_write: bool = False  # a temporary file of the kill moment survived it (inside a write)
    timed_out: bool = False


def run_watched(command: list[str], out: Path, log: Path, env: dict[str, str], timeout: float,
                recursive: bool, kill_after_s: float | None = None,
                kill_at_write: int | None = None) -> Attempt:
    """Run ``command``, watching ``out`` for temporaries; SIGKILL it after ``kill_after_s``
    seconds or as soon as the ``kill_at_write``-th (0-based) temporary file appears."""
    log.parent.mkdir(parents=True, exist_ok=True)
    seen: set[Path] = set()
    with open(log, "wb") as handle:
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True)
        attempt = Attempt(command, None, 0.0, log, 0)
        try:
            while True:
                rc = proc.poll()
                now = time.perf_counter() - t0
                current = temporaries(out, recursive)
                new = current - seen
                seen |= current
                if new and attempt.first_write_at is None:
                    attempt.first_write_at = now
                trigger = None
                if kill_at_write is not None and new and len(seen) > kill_at_write:
                    trigger = f"write #{kill_at_write + 1}: {sorted(new)[0].name}"
                    victims = new
                elif kill_after_s is not None and now >= kill_after_s and rc is None:
                    trigger = f"t={now:.2f}s"
                    victims = current
                if trigger and rc is None:
                    _kill(proc)
                    attempt.killed_at = now
                    alive = [v for v in victims if v.exists()]
                    attempt.mid_write = bool(alive)
                    what = ", ".join(sorted(v.name for v in victims)) if victims else ""
                    attempt.kill_point = trigger + (
                        f" (inside the write of {what})" if alive else
                        f" (the write of {what} had finished)" if victims and kill_at_write
                        is not None else " (no write in progress)")
                    break
                if rc is not None:
                    attempt.rc = rc
                    break
                if now > timeout:
                    _kill(proc)
                    attempt.timed_out = True
                    attempt.kill_point = f"timed out after {timeout:g} s"
                    break
                time.sleep(POLL_S)
        finally:
            if proc.poll() is None:
                _kill(proc)
        attempt.seconds = time.perf_counter() - t0
        attempt.writes_seen = len(seen)
    return attempt


def _kill(proc: subprocess.Popen) -> None:
    """SIGKILL the command's process group (it was started in a session of its own)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


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


def compare_sweep(ref: Path, got: Path) -> list[str]:
    import pandas as pd

    problems = []
    if not (got / "results.csv").is_file():
        return ["results.csv missing"]
    a, b = pd.read_csv(ref / "results.csv"), pd.read_csv(got / "results.csv")
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
            continue
        x, y = json.loads(rec.read_text()), json.loads(other.read_text())
        if x.get("t_stddev") != y.get("t_stddev") or x.get("group_means") != y.get("group_means"):
            problems.append(f"{rec.relative_to(ref)}: T. stddev differs")
    for model in sorted(ref.rglob("model.pt")):
        run = model.parent
        problems += compare_run(run, got / run.relative_to(ref), f"{run.relative_to(ref)}/")
    return problems


def finished(kind: str, out: Path) -> bool:
    if kind == "sweep":
        return (out / "results.csv").is_file()
    return (out / "model.pt").is_file() and (out / "summary.json").is_file()


# ----------------------------------------------------------------------------------------------
# trials


@dataclasses.dataclass
class Trial:
    index: int
    kind: str
    mode: str  # random | targeted (| random after a missed target)
    folder: Path
    attempts: list[Attempt] = dataclasses.field(default_factory=list)
    kills: int = 0
    resumes: int = 0
    restarts: int = 0  # resumes that had to start over (killed before config.yaml)
    result: str = ""  # identical | DIFFERENT | FAILED
    problems: list[str] = dataclasses.field(default_factory=list)
    leftovers: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Reference:
    kind: str
    folder: Path
    seconds: float
    writes: int
    first_write_s: float  # when its first atomic write began (the imports and data load end)


def run_reference(kind: str, work: Path, env: dict, args: argparse.Namespace,
                  name: str = "ref") -> Reference:
    out = work / name / kind
    ref_teacher = work / "ref" / "teacher"
    command = train_command(kind, out, ref_teacher, args)
    attempt = run_watched(command, out, work / name / f"{kind}.log", env, args.timeout,
                          recursive=kind == "sweep")
    if attempt.rc != 0 or not finished(kind, out):
        raise SystemExit(f"the reference {kind} run failed (rc {attempt.rc}):\n"
                         f"{log_tail(attempt.log, 20)}")
    print(f"{'reference' if name == 'ref' else 'second reference'} {kind}: "
          f"{attempt.seconds:.1f} s, {attempt.writes_seen} atomic writes seen", flush=True)
    return Reference(kind, out, attempt.seconds, attempt.writes_seen,
                     attempt.first_write_at or 0.0)


def run_trial(index: int, kind: str, mode: str, ref: Reference, work: Path, env: dict,
              rng: random.Random, args: argparse.Namespace) -> Trial:
    folder = work / "trials" / f"{index:03d}-{kind}-{mode}"
    trial = Trial(index, kind, mode, folder)
    recursive = kind == "sweep"
    out = folder / ("sweep" if kind == "sweep" else "run")
    first = train_command(kind, out, work / "ref" / "teacher", args)
    # the interrupted start (targeted: retried at random times if the write was never seen)
    scale, first_write = ref.seconds, ref.first_write_s  # time scale of the random kills
    tries = 5
    for i in range(tries):
        if trial.mode == "targeted" and ref.writes > 0:
            target = rng.randrange(ref.writes)
            attempt = run_watched(first, out, folder / "attempt-0.log", env, args.timeout,
                                  recursive, kill_at_write=target)
        else:
            # mostly while the run writes (after its imports and data load), sometimes before
            start = first_write * 0.9 if rng.random() < 0.8 else 0.05 * scale
            delay = rng.uniform(min(start, scale * 0.9), scale)
            attempt = run_watched(first, out, folder / "attempt-0.log", env, args.timeout,
                                  recursive, kill_after_s=delay)
        trial.attempts.append(attempt)
        if attempt.killed_at is not None or attempt.timed_out or i == tries - 1:
            break
        # it finished before the kill came (the machine ran faster than for the reference):
        # start afresh and kill at a random time on the scale of this run
        scale = attempt.seconds
        first_write = attempt.first_write_at or first_write
        shutil.rmtree(folder, ignore_errors=True)
        trial.mode = f"{mode}, then random (finished before the kill)"
    if attempt.killed_at is not None:
        trial.kills += 1
    # resume until finished (at least once after a kill: a kill after the last result file
    # but before the process ended may have cut later writes, e.g. a sweep's report folders)
    n = 0
    while (not finished(kind, out) or (n == 0 and trial.kills)) and not attempt.timed_out:
        n += 1
        if n > args.max_resumes:
            trial.result = "FAILED"
            trial.problems.append(f"not finished after {args.max_resumes} resumes")
            return trial
        command = resume_command(kind, out, first)
        if command is first and kind != "sweep":
            trial.restarts += 1
        trial.resumes += 1
        attempt = run_watched(command, out, folder / f"attempt-{n}.log", env, args.timeout,
                              recursive)
        trial.attempts.append(attempt)
        if attempt.rc != 0:
            trial.result = "FAILED"
            trial.problems.append(f"resume exited with {attempt.rc}: "
                                  f"{log_tail(attempt.log, 6)}")
            return trial
    if attempt.timed_out:
        trial.result = "FAILED"
        trial.problems.append(f"timed out after {args.timeout:g} s")
        return trial
    trial.problems = compare_sweep(ref.folder, out) if kind == "sweep" else compare_run(
        ref.folder, out)
    trial.leftovers = sorted(str(p.relative_to(out)) for p in temporaries(out, True))
    real = [p for p in trial.problems if not p.startswith(NOTE)]
    trial.result = "DIFFERENT" if real else "identical"
    return trial


# ----------------------------------------------------------------------------------------------
# report


def render(refs: dict[str, Reference], trials: list[Trial], args: argparse.Namespace,
           seconds: float, reproducible: dict[str, list[str]]) -> str:
    from collections import Counter

    lines = ["# augkd kill-and-resume soak", "",
             f"`python benchmarks/soak/soak.py --kills {args.kills} --seed {args.seed}` "
             f"({seconds / 60:.1f} min; {_commit()}). Each trial SIGKILLs one run and resumes it "
             "until it finishes, then compares it with the uninterrupted reference.", "",
             "## References", "",
             "| kind | command | seconds | atomic writes seen | two uninterrupted runs "
             "identical |", "|---|---|---|---|---|"]
    for kind, ref in refs.items():
        cmd = " ".join("python" if i == 0 else c.replace(str(REPO) + "/", "")
                       for i, c in enumerate(
                           train_command(kind, Path("OUT"), Path("REF_TEACHER"), args)))
        check = ("not checked" if kind not in reproducible else
                 "yes" if not reproducible[kind] else "NO: " + "; ".join(reproducible[kind]))
        lines.append(f"| {kind} | `{cmd}` | {ref.seconds:.1f} | {ref.writes} | {_md(check)} |")
    lines += ["", "## Summary", "",
              "| kind | kills (random) | kills (targeted) | inside a write | resumes | "
              "restarts | identical | DIFFERENT | FAILED | leftover .tmp | notes |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for kind in list(refs) + ["all"]:
        group = [t for t in trials if kind in ("all", t.kind)]
        if not group:
            continue
        c = Counter(t.result for t in group)
        random_kills = sum(t.kills for t in group if not t.mode.startswith("targeted")
                           or "then random" in t.mode)
        targeted = sum(t.kills for t in group) - random_kills
        inside = sum(1 for t in group for a in t.attempts if a.mid_write and a.killed_at)
        lines.append(
            f"| {kind} | {random_kills} | {targeted} | {inside} | "
            f"{sum(t.resumes for t in group)} | {sum(t.restarts for t in group)} | "
            f"{c['identical']} | {c['DIFFERENT']} | {c['FAILED']} | "
            f"{sum(bool(t.leftovers) for t in group)} | "
            f"{sum(any(p.startswith(NOTE) for p in t.problems) for t in group)} |")
    lines += ["", "## Trials", "",
              "| # | kind | kill | where the kill landed | resumes | result | details |",
              "|---|---|---|---|---|---|---|"]
    for t in trials:
        kill = next((a for a in t.attempts if a.killed_at is not None), None)
        where = kill.kill_point if kill else "no kill (finished first)"
        when = f"{kill.killed_at:.2f} s" if kill else "-"
        details = "; ".join(t.problems + ([f"left {', '.join(t.leftovers)}"] if t.leftovers
                                          else []))
        lines.append(f"| {t.index} | {t.kind} | {t.mode}, {when} | {_md(where)} | {t.resumes} | "
                     f"{t.result} | {_md(details) or '-'} |")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


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
    parser.add_argument("--kills", type=int, default=6, help="trials, one SIGKILL each")
    parser.add_argument("--seed", type=int, default=0, help="draws kill times and targets")
    parser.add_argument("--out", type=Path, default=None, help="Markdown result file")
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    parser.add_argument("--teacher-epochs", type=int, default=3)
    parser.add_argument("--student-epochs", type=int, default=2)
    parser.add_argument("--work", type=Path, default=None,
                        help="working folder (default: a temporary one, removed at the end)")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per command")
    parser.add_argument("--max-resumes", type=int, default=5)
    parser.add_argument("--no-reference-check", dest="reference_check", action="store_false",
                        help="skip the second uninterrupted run of each kind (reproducibility)")
    args = parser.parse_args(argv)
    if args.kills < 0 or args.teacher_epochs < 1 or args.student_epochs < 1:
        parser.error("--kills >= 0, --teacher-epochs and --student-epochs >= 1")
    work = args.work or Path(tempfile.mkdtemp(prefix="augkd-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    env = child_env(work)
    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    try:
        refs: dict[str, Reference] = {}
        needed = sorted(set(args.kinds) | ({"teacher"} if "student" in args.kinds else set()),
                        key=KINDS.index)
        for kind in needed:
            refs[kind] = run_reference(kind, work, env, args)
        refs = {k: refs[k] for k in args.kinds}
        reproducible: dict[str, list[str]] = {}
        if args.reference_check:  # two uninterrupted runs must agree, or no trial can
            for kind in args.kinds:
                again = run_reference(kind, work, env, args, name="ref2")
                reproducible[kind] = (compare_sweep if kind == "sweep" else compare_run)(
                    refs[kind].folder, again.folder)
                # the faster of the two durations is the time scale of the random kills
                refs[kind].seconds = min(refs[kind].seconds, again.seconds)
                if reproducible[kind]:
                    print(f"the uninterrupted {kind} runs differ: {reproducible[kind]}")
        trials = []
        for i in range(args.kills):
            # kinds and modes interleaved: with 3 kinds every (kind, mode) pair comes once in 6
            kind = args.kinds[i % len(args.kinds)]
            mode = ("random", "targeted")[(i if len(args.kinds) % 2 else i // len(args.kinds))
                                          % 2]
            trial = run_trial(i, kind, mode, refs[kind], work, env, rng, args)
            trials.append(trial)
            kill = next((a for a in trial.attempts if a.killed_at is not None), None)
            print(f"trial {i} {kind} {trial.mode}: "
                  f"{kill.kill_point if kill else 'no kill'}; {trial.resumes} resume(s) -> "
                  f"{trial.result}{': ' + '; '.join(trial.problems) if trial.problems else ''}"
                  f"{' (left ' + ', '.join(trial.leftovers) + ')' if trial.leftovers else ''}",
                  flush=True)
        text = render(refs, trials, args, time.perf_counter() - t0, reproducible)
    finally:
        if args.work is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif args.keep or args.work:
            print(f"working folder kept: {work}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"-> {args.out}")
    else:
        print(text)
    ok = all(t.result == "identical" and not t.leftovers for t in trials) and not any(
        reproducible.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
