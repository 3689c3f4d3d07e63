"""What every augkd command line shares: bad input ends in one clear line, not a traceback."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from augkd.extras import MissingExtraError
from augkd.process import PR_SET_PDEATHSIG, prctl

# Errors that mean "the user asked for something that cannot be done": their messages name the
# bad value and what was expected, so the command prints them as one line and exits with 2.
# OSError covers a missing file, a full disk ("cannot write PATH: No space left on device") and
# a run folder that another process is writing (RunFolderBusyError); MissingExtraError an
# optional dependency that is not installed (its message names the pip command).
USER_ERRORS = (ValueError, OSError, KeyError, MissingExtraError)


INTERRUPTED_EXIT = 130  # 128 + SIGINT, what a shell reports for a command stopped by Ctrl-C


def name_flags(message: str, flags: Mapping[str, str]) -> str:
    """``message`` with the config keys that a check names written as the flags a user types:
    ``agb_lambda must be in [0, 1]`` -> ``--agb-lambda must be in [0, 1]``, ``quant: ...`` ->
    ``--quant: ...``, ``dataset 'imagefolder' needs root`` -> ``... needs --root``. A key
    that starts a sentence about something else (``teacher runs/t does not fit``) stays.
    ``flags`` maps keys to flags."""
    for key, flag in flags.items():
        if re.match(rf"{re.escape(key)}( must\b|:)", message):
            message = flag + message[len(key):]
        message = re.sub(rf"\bneeds {re.escape(key)}\b(?![-.])", f"needs {flag}", message)
    return message


def run_cli(body: Callable[[], int | None], *, rerun: str = "",
            flags: Mapping[str, str] | None = None) -> int:
    """Run a command's body; a user error prints ``error: <message>`` on stderr and returns 2,
    a non-finite training loss returns 3, failed worker processes return 1 (one line each).

    Ctrl-C (SIGINT) stops it with one line on stderr instead of a traceback and returns 130:
    a training run's own line says where it stopped and how to resume it
    (:class:`augkd.training.api.RunInterrupted`); otherwise ``rerun`` says how to continue.
    ``flags`` (config key -> flag) makes a user error name the flag rather than the key
    (:func:`name_flags`).
    """
    from augkd.training.api import RunInterrupted
    from augkd.training.trainer import NonFiniteLossError

    try:
        return body() or 0
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except WorkersFailedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except USER_ERRORS as err:
        print(f"error: {name_flags(str(err), flags or {})}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        # a terminal shows ^C where the cursor was: start the message on a line of its own
        start = "\n" if sys.stderr.isatty() else ""
        if isinstance(err, RunInterrupted) and not rerun:
            print(f"{start}{err}", file=sys.stderr)
        else:
            print(f"{start}interrupted" + (f"; {rerun}" if rerun else ""), file=sys.stderr)
        return INTERRUPTED_EXIT


def add_trust_flag(parser) -> None:
    """``--trust-folder``: let DA specs read back from folders import their modules
    (:mod:`augkd.trust`); commands that read run folders call :func:`apply_trust_flag`."""
    parser.add_argument("--trust-folder", action="store_true",
                        help="let DA specs read back from folders (a run's config.yaml or "
                        "checkpoint, trial and sweep job folders) import their modules; "
                        "without it only augkd's DAs and the kornia:/albumentations: "
                        "catalogs are built from a folder (docs/augmentations.md)")


def apply_trust_flag(args) -> None:
    """Trust folders in this process when ``args.trust_folder`` (see :func:`add_trust_flag`)."""
    from augkd.trust import trust_folders

    trust_folders(bool(getattr(args, "trust_folder", False)))


def worker_log(worker_id: int) -> Callable[[str], None]:
    """A logger for worker process ``worker_id`` that writes each line in one call.

    The workers share the parent's stdout; ``print`` writes the text and its newline separately
    when Python runs unbuffered (``PYTHONUNBUFFERED``), and two workers' lines then interleave.
    """
    def log(message: str) -> None:
        sys.stdout.write(f"[worker {worker_id}] {message}\n")
        sys.stdout.flush()
    return log


class WorkersFailedError(RuntimeError):
    """Worker processes failed or were killed; the message names them, their exit codes and
    what to rerun. The command prints it as one line and exits with 1."""


def _die_with_parent(parent: int, call: Callable[..., int] | None) -> Callable[[], None]:
    """A ``preexec_fn`` for a worker: on Linux the kernel sends it SIGTERM when the parent
    dies, by any signal, even ``kill -9`` (``PR_SET_PDEATHSIG``); a worker whose parent died
    before the call exits at once. The worker ignores SIGINT: a Ctrl-C in the terminal reaches
    the whole process group, and the parent alone answers it (it stops the workers and prints
    one line), instead of every worker printing its own."""
    def preexec() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if call is not None:
            call(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)
    return preexec


def run_worker_processes(module: str | Path, argv: list[str], n: int, *, what: str, rerun: str,
                         cpu_threads: bool = True) -> None:
    """Run ``python -m module *argv --worker-id I`` for I in 0..n-1 and wait for all of them.

    ``module`` is a module name (``"augkd.sweep"``) or, as a :class:`~pathlib.Path`, a script
    run as ``python script.py`` (the study scripts under experiments/).

    With ``cpu_threads`` each worker gets ``cores // n`` threads (small CIFAR models are
    overhead-bound: two single-thread processes do about twice the work of one with two
    threads). The workers die with the parent: a Ctrl-C (which they ignore themselves) or
    SIGTERM of the parent stops them with SIGTERM (and waits for them), and on Linux a
    ``kill -9`` of the parent sends them SIGTERM (``PR_SET_PDEATHSIG``), so none runs on under
    PID 1.

    Raises:
        WorkersFailedError: a worker failed; the message names it, its exit code, and
            ``rerun``.
    """
    target = [str(module)] if isinstance(module, Path) else ["-m", module]
    env = dict(os.environ)
    if cpu_threads:
        threads = str(max(1, (os.cpu_count() or 1) // n))
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    preexec = _die_with_parent(os.getpid(), prctl())
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main_thread else None

    def on_sigterm(signum, frame):
        raise SystemExit(128 + signum)

    procs: list[subprocess.Popen] = []
    try:
        if main_thread:
            signal.signal(signal.SIGTERM, on_sigterm)
        for i in range(n):
            procs.append(subprocess.Popen(
                [sys.executable, *target, *argv, "--worker-id", str(i)], env=env,
                preexec_fn=preexec))
        codes = [proc.wait() for proc in procs]
    except BaseException:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        raise
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    failed = [i for i, code in enumerate(codes) if code != 0]
    if failed:
        raise WorkersFailedError(
            f"{what} worker(s) {', '.join(map(str, failed))} failed (exit codes "
            f"{', '.join(str(codes[i]) for i in failed)}); {rerun}")
