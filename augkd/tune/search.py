"""Searching the distill-loss weight with Optuna: the slow way AGB is compared with.

A study searches beta, the weight of the method's distill loss (CE weight ``w_task``, 1 by
default), log-uniform over ``[beta_low, beta_high]`` (the AGB paper's [0.02, 30000]). Each trial
is a normal augkd student run with the manual balancer at that beta, trained on the training
split less the held-out 10 % that AGB's lambda search holds out (same seed, same images) and
scored on that held-out part, at the initial lr for ``cfg.epochs`` epochs, like AGB's warm-ups.
The test split is never read by a trial.

The study lives in an Optuna storage (an SQLite file in the tuning folder by default), so:

- a killed search, restarted with the same command, keeps its finished trials; a trial killed
  mid-run is failed once its heartbeat stops (``heartbeat_s``, then ``2 x heartbeat_s`` grace)
  and retried with the same beta, continuing its own run folder from its last epoch;
- several processes (``workers``) or machines (one command each, same ``storage``) work on one
  study at once; ``trials`` counts the finished (complete or pruned) trials of all of them.

A trial whose loss turns non-finite (a beta large enough to diverge) scores 0 % and records
why in its ``diverged`` attribute. Pruning (``pruner="hyperband"`` or ``"halving"``) reads the
held-out top-1 reported after every epoch. At the end the best beta may be trained on the full
schedule (``final_epochs``) as an ordinary run on the full training set, scored on the test set.

Folder layout (``out``)::

    study.db            the Optuna storage (unless ``storage`` points elsewhere)
    tune.yaml           the student config of the trials and the search settings
    trials/trial-0003/  one run folder per trial (config.yaml, metrics.jsonl, summary.json, ...)
    trials.csv          number, state, beta, held-out top-1 / loss, epochs, seconds, worker
    tune.json           the best beta, its held-out score, the time and epochs spent
    final/              the best beta on the full schedule (if final_epochs)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import re
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augkd.cli import WorkersFailedError, run_worker_processes
from augkd.data import Dataset
from augkd.files import remove_stale_temporaries
from augkd.training.api import load_data, resolve_normalization, train
from augkd.training.checkpoint import atomic_write_csv, atomic_write_text
from augkd.training.config import RUNTIME_FIELDS, TrainConfig
from augkd.training.loggers import show_bars
from augkd.training.run import RunDir, exclusive
from augkd.training.trainer import NonFiniteLossError

PRUNERS = ("none", "hyperband", "halving")
SAMPLERS = ("tpe", "random", "anneal")
TRIAL_FIELDS = ("number", "state", "w_distill", "holdout_top1", "holdout_loss", "epochs",
                "seconds", "worker", "folder")


@dataclass
class TuneConfig:
    """The search's own settings (the trials' student settings are a :class:`TrainConfig`)."""

    trials: int = 20
    sampler: str = "tpe"
    pruner: str = "none"
    beta_low: float = 0.02
    beta_high: float = 30000.0
    w_task: float = 1.0
    storage: str | None = None  # default sqlite:///<out>/study.db
    study_name: str = "augkd-tune"
    seed: int | None = None  # the sampler's (None: the student's seed); worker k adds k
    workers: int = 1
    heartbeat_s: int = 30
    final_epochs: int = 0  # 0: no final run
    max_epochs: int | None = None  # a compute budget: no new trial once trials used this many

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad field and what it accepts."""
        checks = [
            ("trials", isinstance(self.trials, int) and self.trials >= 1, "an integer >= 1"),
            ("seed", self.seed is None or isinstance(self.seed, int), "an integer or None"),
            ("sampler", self.sampler in SAMPLERS, " | ".join(SAMPLERS)),
            ("pruner", self.pruner in PRUNERS, " | ".join(PRUNERS)),
            ("beta_low", _positive(self.beta_low), "a number > 0"),
            ("beta_high", _positive(self.beta_high) and self.beta_high > self.beta_low,
             f"a number > beta_low ({self.beta_low})"),
            ("w_task", _positive(self.w_task) or self.w_task == 0, "a number >= 0"),
            ("workers", isinstance(self.workers, int) and self.workers >= 1, "an integer >= 1"),
            ("heartbeat_s", isinstance(self.heartbeat_s, int) and self.heartbeat_s >= 1,
             "an integer >= 1 (seconds)"),
            ("final_epochs", isinstance(self.final_epochs, int) and self.final_epochs >= 0,
             "an integer >= 0"),
            ("max_epochs", self.max_epochs is None or (isinstance(self.max_epochs, int)
                                                       and self.max_epochs >= 1),
             "an integer >= 1 or None"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"tune {name} must be {expected}, got {getattr(self, name)!r}")

    def storage_url(self, out: Path) -> str:
        return self.storage or f"sqlite:///{(out / 'study.db').resolve()}"


def _positive(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x > 0


@dataclass
class TuneResult:
    """What a search found: the best beta, its held-out score, its cost, and the trials."""

    out: Path
    best_w_distill: float
    best_holdout_top1: float
    trials: list[dict[str, Any]]
    search_seconds: float
    search_epochs: int
    final: dict[str, Any] | None = None


def trial_config(student: TrainConfig, tune_cfg: TuneConfig, beta: float) -> TrainConfig:
    """The student config of one trial: manual balancer at ``(w_task, beta)``, constant lr."""
    return student.at_initial_lr(balancer="manual", w_task=tune_cfg.w_task,
                                 w_distill=float(beta), agb_search=False, progress=False)


def shown_url(url: str) -> str:
    """``url`` fit for a message: the password of a database URL hidden."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: its scheme and host part cannot hold a password
        return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", url)


@contextlib.contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Turn the storage's failures (a corrupt or truncated SQLite file, a path that cannot be
    opened, an unknown scheme, a missing driver, a server that refuses) into one line naming
    the storage URL."""
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        yield
    except (SQLAlchemyError, ArgumentError, ImportError) as err:
        first = (str(getattr(err, "orig", None) or err).strip().splitlines() or [""])[0]
        hint = ""
        if isinstance(err, ImportError) or "Can't load plugin" in str(err):
            hint = ("; augkd.tune takes sqlite:///PATH and postgresql+psycopg://USER@HOST/DB "
                    "(pip install \"augkd[postgres]\", docs/cluster.md)")
        raise ValueError(f"cannot use the study storage {shown_url(url)}: "
                         f"{type(err).__name__}: {first}{hint}") from None


def _open_study(tune_cfg: TuneConfig, out: Path, worker: int, seed: int, epochs: int):
    url = tune_cfg.storage_url(out)
    with storage_errors(url):
        return _open_study_at(url, tune_cfg, worker, seed, epochs)


def _open_study_at(url: str, tune_cfg: TuneConfig, worker: int, seed: int, epochs: int):
    import optuna
    from optuna.storages import RDBStorage

    from augkd.tune.anneal import make_sampler

    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    with warnings.catch_warnings():  # heartbeats and their retry are "experimental" in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = RDBStorage(
            url, heartbeat_interval=tune_cfg.heartbeat_s, grace_period=2 * tune_cfg.heartbeat_s,
            heartbeat_stale_trial_callback=_retry_stale_trial, **kwargs)
    pruner = {
        "none": optuna.pruners.NopPruner,
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs,
                                                            reduction_factor=3),
        "halving": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1,
                                                                  reduction_factor=3),
    }[tune_cfg.pruner]()
    return optuna.create_study(storage=storage, study_name=tune_cfg.study_name,
                               direction="maximize", load_if_exists=True, pruner=pruner,
                               sampler=make_sampler(tune_cfg.sampler, seed + worker))


#: How often a trial whose worker died (its heartbeat stopped) is retried with its beta.
MAX_RETRIES = 3


def _retry_stale_trial(study, trial) -> None:
    """Queue one retry of a trial whose heartbeat stopped (its worker was killed), unless a
    retry of it is already queued or ran: two workers that both find the trial stale (each
    fails it) would otherwise queue two retries of one trial folder."""
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    if _retries_of(study, trial.number):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)(study, trial)


def _retries_of(study, number: int) -> list:
    """The trials queued as retries of trial ``number`` (Optuna's ``retry_history`` of a
    retry ends with the trial it retries)."""
    return [t for t in study.get_trials(deepcopy=False)
            if (t.system_attrs.get("retry_history") or [None])[-1] == number]


def _duplicate_of(study, trial) -> int | None:
    """The number of an earlier twin of ``trial`` (another retry of the same stale trial that
    finished, or runs with a lower number), else None."""
    from optuna.trial import TrialState

    history = trial.system_attrs.get("retry_history") or []
    if not history:
        return None
    for other in _retries_of(study, history[-1]):
        if other.number == trial.number:
            continue
        if other.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
                other.state == TrialState.RUNNING and other.number < trial.number):
            return other.number
    return None


class DuplicateRetryError(RuntimeError):
    """A second retry of one stale trial: it fails at once, so the trial runs (and counts)
    once and no two processes write its folder. Also a new trial asked for while another
    worker took the last queued retry of a search that is done."""


def _finished(study) -> list:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def _waiting(study) -> list:
    """The trials queued to run: retries of trials whose worker died."""
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.WAITING,))


def _fail_stale_trials(study) -> None:
    """Fail the trials whose heartbeat stopped (their worker was killed), which queues one
    retry of each (:func:`_retry_stale_trial`)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _search_done(study, tune_cfg: TuneConfig) -> bool:
    """``trials`` finished trials, or ``max_epochs`` epochs spent by the finished ones."""
    finished = _finished(study)
    spent = sum(int(t.user_attrs.get("epochs", 0)) for t in finished)
    return len(finished) >= tune_cfg.trials or (tune_cfg.max_epochs is not None
                                                and spent >= tune_cfg.max_epochs)


def run_worker(student: TrainConfig, tune_cfg: TuneConfig, out: Path, *, data: Dataset,
               worker: int = 0, log: Callable[[str], None] = print) -> None:
    """Run trials of the study in ``out`` until it holds ``tune_cfg.trials`` finished ones
    (or its finished trials have spent ``tune_cfg.max_epochs`` epochs)."""
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # one bar over the trials, not per run, and only on a terminal
    bar = show_bars(student.progress) and tune_cfg.workers == 1
    if bar:  # the trial lines go above the bar
        from tqdm import tqdm

        log = tqdm.write
    seed = student.seed if tune_cfg.seed is None else tune_cfg.seed
    study = _open_study(tune_cfg, out, worker, seed, student.epochs)

    def objective(trial: optuna.Trial) -> float:
        beta = trial.suggest_float("w_distill", tune_cfg.beta_low, tune_cfg.beta_high, log=True)
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            first = RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
        number = trial.number if first is None else first  # a retry continues its folder
        folder = out / "trials" / f"trial-{number:04d}"
        twin = _duplicate_of(study, frozen)
        if twin is not None:  # fails at once: counts toward nothing, writes nothing
            log(f"[trial {trial.number}] a second retry of trial {number} (trial {twin} "
                "retries it): skipped")
            raise DuplicateRetryError(f"trial {trial.number} duplicates the retry {twin}")
        if first is None and _search_done(study, tune_cfg):
            # another worker took the last queued retry: this new trial is not needed
            raise DuplicateRetryError(f"trial {trial.number}: the search is done")
        trial.set_user_attr("folder", str(folder.relative_to(out)))
        trial.set_user_attr("worker", worker)
        run = RunDir(folder)
        for record in run.read_metrics() if run.config.is_file() else []:
            trial.report(record["test_top1"], record["epoch"])  # a resumed run's epochs

        def on_epoch(record: dict[str, Any]) -> None:
            trial.report(record["test_top1"], record["epoch"])
            # pruning after the last epoch saves nothing: the trial then counts as complete
            if record["epoch"] < student.epochs and trial.should_prune():
                trial.set_user_attr("epochs", record["epoch"])
                trial.set_user_attr("holdout_loss", record["test_loss"])
                raise optuna.TrialPruned(f"pruned after epoch {record['epoch']}")

        t0 = time.perf_counter()
        log(f"[trial {trial.number}] w_distill {beta:.4g} -> {folder}")
        try:
            result = train(trial_config(student, tune_cfg, beta), folder,
                           resume=run.config.is_file(), data=data, holdout=True,
                           on_epoch=on_epoch, log=lambda line: None)
        except NonFiniteLossError as err:  # diverged: the worst score, so samplers learn it
            trial.set_user_attr("epochs", len(run.read_metrics()) + 1)
            trial.set_user_attr("diverged", str(err))
            log(f"[trial {trial.number}] w_distill {beta:.4g}: diverged ({err}); scored 0")
            return 0.0
        finally:
            trial.set_user_attr("seconds", time.perf_counter() - t0)
        last = result.summary["last"]
        trial.set_user_attr("epochs", last["epoch"])
        trial.set_user_attr("holdout_loss", last["test_loss"])
        log(f"[trial {trial.number}] w_distill {beta:.4g}: held-out top-1 "
            f"{last['test_top1']:.2f}%")
        return float(last["test_top1"])

    def enough(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if _search_done(study, tune_cfg) and not _waiting(study):
            study.stop()

    with storage_errors(tune_cfg.storage_url(out)):
        # a trial killed once the study had its trials is retried too, as an uninterrupted
        # search would have finished it: the queued retries run even when the count is reached
        _fail_stale_trials(study)
        while not _search_done(study, tune_cfg) or _waiting(study):
            needed = max(tune_cfg.trials - len(_finished(study)), len(_waiting(study)), 1)
            study.optimize(objective, n_trials=needed, callbacks=[enough],
                           catch=(DuplicateRetryError,), show_progress_bar=bar)


def _retry_dead_trials(tune_cfg: TuneConfig, out: Path, epochs: int,
                       log: Callable[[str], None]) -> bool:
    """After this command's workers: a trial the study still holds as running was started by
    a worker that was killed (a restart sooner than ``2 x heartbeat_s`` after the kill does not
    see it stale yet) or runs in another command on the same storage. Wait until each is
    finished or stale, at most that grace period (the others' heartbeats go on), failing the
    stale ones, which queues their retries; returns whether retries are waiting to run."""
    from optuna.trial import TrialState

    study = _open_study(tune_cfg, out, 0, 0, epochs)
    with storage_errors(tune_cfg.storage_url(out)):
        def running() -> list:
            return study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))

        if running():
            numbers = ", ".join(str(t.number) for t in running())
            log(f"trial(s) {numbers} still running: waiting up to "
                f"{2 * tune_cfg.heartbeat_s} s to retry those whose worker was killed")
            deadline = time.monotonic() + 2 * tune_cfg.heartbeat_s + 1
            while True:
                _fail_stale_trials(study)
                if not running() or time.monotonic() > deadline:
                    break
                time.sleep(min(1.0, tune_cfg.heartbeat_s / 2))
        return bool(_waiting(study))


def trials_table(study) -> list[dict[str, Any]]:
    """One row per trial of ``study`` (see ``TRIAL_FIELDS``)."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        rows.append({
            "number": t.number, "state": t.state.name.lower(),
            "w_distill": t.params.get("w_distill"),
            "holdout_top1": t.value if t.value is not None else (
                t.intermediate_values[max(t.intermediate_values)]
                if t.intermediate_values else None),
            "holdout_loss": attrs.get("holdout_loss"), "epochs": attrs.get("epochs"),
            "seconds": attrs.get("seconds"), "worker": attrs.get("worker"),
            "folder": attrs.get("folder"),
        })
    return rows


def write_trials_table(tune_cfg: TuneConfig, out: Path, epochs: int):
    """Write ``out/trials.csv`` from the study; returns the study and the rows."""
    study = _open_study(tune_cfg, out, 0, 0, epochs)
    with storage_errors(tune_cfg.storage_url(out)):
        rows = trials_table(study)
    atomic_write_csv(rows, TRIAL_FIELDS, out / "trials.csv")
    return study, rows


def tune(student: TrainConfig, tune_cfg: TuneConfig, out: str | Path, *,
         data: Dataset | None = None, log: Callable[[str], None] = print,
         worker_argv: list[str] | None = None) -> TuneResult:
    """Search the distill weight of ``student`` (a student :class:`TrainConfig` whose
    ``epochs`` are the epochs per trial) and return the best; see the module docstring.

    With ``tune_cfg.workers > 1`` the trials run in that many processes started with
    ``worker_argv`` (the CLI passes its own arguments); the API's caller may instead start
    one :func:`run_worker` per process on the same storage.
    """
    if student.role != "student":
        raise ValueError(f"augkd.tune searches a student's loss weights; got role {student.role!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for path in remove_stale_temporaries(out):  # those of running processes stay
        log(f"removed {path.relative_to(out)}, left by a write that was killed")
    data = data if data is not None else load_data(student)
    student = resolve_normalization(student, data)
    _check_settings(out, student, tune_cfg)
    start = time.perf_counter()
    if tune_cfg.workers > 1 and worker_argv is None:
        raise ValueError("workers > 1 needs worker_argv (the CLI's arguments) to start "
                         "the worker processes; from Python, run run_worker per process")
    try:
        if tune_cfg.workers > 1:
            run_worker_processes("augkd.tune", worker_argv, tune_cfg.workers, what="tune",
                                 rerun="rerun to continue the study")
        else:
            run_worker(student, tune_cfg, out, data=data, log=log)
        if _retry_dead_trials(tune_cfg, out, student.epochs, log):
            run_worker(student, tune_cfg, out, data=data, log=log)  # the queued retries
    except WorkersFailedError:  # the table still lists what the other workers finished
        write_trials_table(tune_cfg, out, student.epochs)
        raise
    wall = time.perf_counter() - start
    study, rows = write_trials_table(tune_cfg, out, student.epochs)
    scored = [r for r in rows if r["state"] == "complete"]
    if not scored:
        raise RuntimeError(f"no trial of the study in {out} completed; see {out / 'trials.csv'}")
    best = study.best_trial
    result = TuneResult(
        out=out, best_w_distill=float(best.params["w_distill"]),
        best_holdout_top1=float(best.value), trials=rows,
        search_seconds=sum(r["seconds"] or 0.0 for r in rows),
        search_epochs=sum(int(r["epochs"] or 0) for r in rows),
    )
    log(f"best w_distill {result.best_w_distill:.4g}: held-out top-1 "
        f"{result.best_holdout_top1:.2f}% after {len(rows)} trials, {result.search_epochs} "
        f"epochs, {result.search_seconds:.0f} s of training ({wall:.0f} s this call)")
    if tune_cfg.final_epochs:
        final_cfg = student.replace(balancer="manual", w_task=tune_cfg.w_task,
                                    w_distill=result.best_w_distill, agb_search=False,
                                    epochs=tune_cfg.final_epochs)
        run = train_final(final_cfg, out / "final", data, log)
        result.final = {"folder": str(run.run_dir.relative_to(out)), **run.summary["last"]}
    atomic_write_text(json.dumps({
        "best_w_distill": result.best_w_distill, "best_holdout_top1": result.best_holdout_top1,
        "best_trial": best.number, "trials": len(rows),
        "complete": len(scored), "pruned": sum(r["state"] == "pruned" for r in rows),
        "search_seconds": result.search_seconds, "search_epochs": result.search_epochs,
        "final": result.final,
    }, indent=2) + "\n", out / "tune.json")
    return result


def train_final(cfg: TrainConfig, folder: Path, data: Dataset, log: Callable[[str], None]):
    """The best weight on the full schedule: an ordinary run (resumed if it was killed)."""
    run = RunDir(folder)
    with exclusive(folder.with_suffix(".lock"), log, str(folder)):
        return train(cfg, folder, resume=run.config.is_file(), data=data, log=log)


#: The study's user attribute that holds the settings of the search that made it.
SETTINGS_ATTR = "augkd_settings"
#: Student fields a process may change on the same study (where it runs, what it prints).
_RUNTIME_STUDENT_FIELDS = RUNTIME_FIELDS


def search_settings(student: TrainConfig, tune_cfg: TuneConfig) -> dict[str, Any]:
    """What a study's trials depend on: the trials' student config (less where a process runs
    it) and the search settings (less how many trials, workers and epochs it may spend)."""
    student_values = {k: v for k, v in student.to_dict().items()
                      if k not in _RUNTIME_STUDENT_FIELDS}
    tune_values = {k: v for k, v in dataclasses.asdict(tune_cfg).items()
                   if k not in ("trials", "workers", "heartbeat_s", "final_epochs", "max_epochs",
                                "storage")}
    return _normal({"student": student_values, "tune": tune_values})


def _changed(settings: dict[str, Any], old: Any) -> list[str]:
    """The dotted names of ``settings`` whose values differ in ``old`` (a stored copy)."""
    old = old if isinstance(old, dict) else {}
    changed = []
    for part, values in settings.items():
        theirs = old.get(part) if isinstance(old.get(part), dict) else {}
        changed += [f"{part}.{k}" for k, v in values.items() if v != _normal(theirs.get(k))]
    return changed


def _check_settings(out: Path, student: TrainConfig, tune_cfg: TuneConfig) -> None:
    """Write ``tune.yaml`` and create the study on the first call; refuse to mix a changed
    search into the folder or into the study (the storage may be shared by several folders:
    the study keeps its settings in its user attributes)."""
    import yaml

    from augkd.training.config import read_yaml_mapping

    settings = search_settings(student, tune_cfg)
    path = out / "tune.yaml"
    url = tune_cfg.storage_url(out)
    with exclusive(out / "tune.lock", lambda line: None, str(out)):
        if path.is_file():
            changed = _changed(settings, read_yaml_mapping(path))
            if changed:
                raise ValueError(f"{out} holds a search with other settings ({', '.join(changed)}"
                                 f"); use another --out or the same settings")
        # create the storage and the study once, here: two processes creating one SQLite
        # schema at the same time collide (the workers and other commands only open it)
        study = _open_study(tune_cfg, out, 0, 0, student.epochs)
        with storage_errors(url):
            stored = study.user_attrs.get(SETTINGS_ATTR)
        changed = _changed(settings, stored) if stored is not None else []
        if changed:
            raise ValueError(
                f"study {tune_cfg.study_name!r} in {shown_url(url)} was made by a search with "
                f"other settings ({', '.join(changed)}); use the same settings, or give this "
                "search its own --study-name (or --storage)")
        if stored is None:
            with storage_errors(url):
                study.set_user_attr(SETTINGS_ATTR, settings)
        if not path.is_file():
            atomic_write_text(yaml.safe_dump(settings, sort_keys=False), path)


def _normal(value: Any) -> Any:
    return json.loads(json.dumps(value))  # tuples and lists compare equal
