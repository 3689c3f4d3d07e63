"""What every augkd command line shares: bad input ends in one clear line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

from augkd.extras import MissingExtraError

# Errors that mean "the user asked for something that cannot be done": their messages name the
# bad value and what was expected, so the command prints them as one line and exits with 2.
# OSError covers a missing file, a full disk ("cannot write PATH: No space left on device") and
# a run folder that another process is writing (RunFolderBusyError); MissingExtraError an
# optional dependency that is not installed (its message names the pip command).
USER_ERRORS = (ValueError, OSError, KeyError, MissingExtraError)


def run_cli(body: Callable[[], int | None]) -> int:
    """Run a command's body; a user error prints ``error: <message>`` on stderr and returns 2,
    a non-finite training loss returns 3."""
    from augkd.training.trainer import NonFiniteLossError

    try:
        return body() or 0
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


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


def run_worker_processes(module: str, argv: list[str], n: int, *, what: str, rerun: str,
                         cpu_threads: bool = True) -> None:
    """Run ``python -m module *argv --worker-id I`` for I in 0..n-1 and wait for all of them.

    With ``cpu_threads`` each worker gets ``cores // n`` threads (small CIFAR models are
    overhead-bound: two single-thread processes do about twice the work of one with two
    threads). A Ctrl-C or a kill of the parent stops the workers too.

    Raises:
        RuntimeError: a worker failed; the message names it, its exit code, and ``rerun``.
    """
    env = dict(os.environ)
    if cpu_threads:
        threads = str(max(1, (os.cpu_count() or 1) // n))
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    procs = [subprocess.Popen([sys.executable, "-m", module, *argv, "--worker-id", str(i)],
                              env=env) for i in range(n)]
    try:
        codes = [proc.wait() for proc in procs]
    except BaseException:
        for proc in procs:
            proc.terminate()
        raise
    failed = [i for i, code in enumerate(codes) if code != 0]
    if failed:
        raise RuntimeError(f"{what} worker(s) {', '.join(map(str, failed))} failed (exit codes "
                           f"{', '.join(str(codes[i]) for i in failed)}); {rerun}")
