"""The trial store: one Optuna study per run (SQLite file by default, any SQLAlchemy URL).

Each evaluated architecture is one Optuna trial. Its user attributes hold what automl needs
and what optuna-dashboard shows: ``arch`` (the JSON architecture), ``arch_key`` (canonical
text), ``arch_str`` (the space's description), ``metrics`` (every metric, report-only ones
included), ``violation`` (constraint excess, 0 = feasible), ``duration_s``, ``error`` and, for a failure,
``traceback`` (its last frames).
Objective values are the trial's values, so Optuna's own tools read the front.

Liveness and order, for crash recovery and several processes on one study:

* ``owner`` (host, pid, process start time) and ``heartbeat`` (a wall-clock time the owning
  process refreshes while the trial runs, :class:`Heartbeat`) on every trial it starts; a
  RUNNING trial whose owner process is gone (same host) or whose heartbeat is older than the
  grace period (other hosts) is *stale*: a process killed mid-trial. ``--resume`` marks stale
  trials FAIL with ``interrupted=True``; such trials are ignored by resume, the duplicate cache
  and the budget, so they are evaluated again. Live trials of another process are left alone.
* ``told``: when the result was recorded (ns); resume replays results in that order.
* :meth:`TrialStore.claim`: a process that starts an architecture another live or finished
  trial already holds gives its trial up (``superseded``), so two processes on one study never
  evaluate the same architecture twice.

*Scorings* (:meth:`TrialStore.record_scorings`, :class:`automl.types.Scoring`) are cheap measurements a controller makes inside
its ``prepare`` with weights inherited from its supernet (CR-NAS scores every stage allocation
this way). They live in a second study of the same storage, ``<study>:supernet``, one trial
each with ``proposal.inherit = "supernet"``; they are not trials of the search (no budget, not
on the front, never served as duplicates) but stay readable (:meth:`TrialStore.scorings`,
``automl show``) and let a resumed ``prepare`` skip what it already scored.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from automl.types import Arch, Objective, Result, Scoring, arch_key


@dataclass
class TrialRecord:
    """A finished trial as automl sees it."""

    number: int
    arch: dict[str, Any]
    key: str
    state: str  # "complete" | "failed" | "pruned"
    metrics: dict[str, float] = field(default_factory=dict)
    values: tuple[float, ...] | None = None
    violation: float = 0.0
    duration_s: float = 0.0
    error: str = ""
    arch_str: str = ""
    told: int = 0
    proposal: dict[str, Any] = field(default_factory=dict)
    traceback: str = ""

    @property
    def feasible(self) -> bool:
        return self.state == "complete" and self.violation <= 0

    def result(self, hidden: Sequence[str] = ()) -> Result:
        """The controller's view: report-only metrics removed."""
        metrics = {k: v for k, v in self.metrics.items() if k not in hidden}
        return Result(
            values=self.values if self.state == "complete" else None,
            metrics=metrics,
            violation=self.violation,
            failed=self.state != "complete",
            trial=self.number,
            error=self.error,
        )


class StoreMissing(ValueError):
    """The store of an existing run cannot be read: missing, empty, damaged or without the study."""


def default_storage(run_dir: str) -> str:
    return f"sqlite:///{Path(run_dir).resolve() / 'study.db'}"


def sqlite_path(storage: Any) -> Path | None:
    """The database file of an ``sqlite:///PATH`` URL (None for other storages and in-memory)."""
    if not isinstance(storage, str) or not storage.startswith("sqlite:///"):
        return None
    rest = storage.removeprefix("sqlite:///").split("?", 1)[0]
    if rest in ("", ":memory:"):
        return None
    return Path(rest.removeprefix("file:"))


def absolute_sqlite(storage: Any) -> Any:
    """``sqlite:///rel/study.db`` with its file made absolute (a run is resumed from anywhere);
    other storages unchanged."""
    path = sqlite_path(storage)
    if path is None or path.is_absolute() or storage.startswith("sqlite:///file:"):
        return storage
    query = storage.partition("?")[2]
    return f"sqlite:///{path.absolute()}" + (f"?{query}" if query else "")


def _study_names(path: Path) -> list[str] | None:
    """The studies an SQLite file holds, read without writing; None when it holds no Optuna store."""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            return [row[0] for row in db.execute("SELECT study_name FROM studies")]
    except sqlite3.Error:
        return None


def only_study(storage: Any) -> str | None:
    """The name of the one study an ``sqlite:///`` store holds (read-only), else None."""
    path = sqlite_path(storage)
    names = _study_names(path) if path is not None and path.is_file() else None
    return names[0] if names is not None and len(names) == 1 else None


class TrialStore:
    """Read and write the trials of one run in an Optuna storage."""

    def __init__(
        self,
        storage: str | optuna.storages.BaseStorage | None,
        study_name: str,
        objectives: Sequence[Objective],
        *,
        create: bool = True,
        pruner: optuna.pruners.BasePruner | None = None,
    ) -> None:
        optuna.logging.set_verbosity(logging.WARNING)
        self.objectives = tuple(objectives)
        self.study_name = study_name
        self._scoring_study: optuna.Study | None = None
        directions = ["maximize" if o.direction == "max" else "minimize" for o in objectives]
        if create:
            self.study = optuna.create_study(
                storage=storage, study_name=study_name, directions=directions, load_if_exists=True, pruner=pruner
            )
        else:
            self.study = optuna.load_study(storage=storage, study_name=study_name, pruner=pruner)
        if create and self.study.user_attrs.get("objectives") is None:
            self.study.set_user_attr("objectives", [str(o) for o in objectives])

    @classmethod
    def open_existing(
        cls,
        storage: str,
        study_name: str,
        objectives: Sequence[Objective],
        *,
        read_only: bool = False,
        pruner: optuna.pruners.BasePruner | None = None,
    ) -> TrialStore:
        """The store of a run that must already exist: nothing is created, and with
        ``read_only`` (SQLite) nothing is written. A missing, empty or damaged SQLite file or a
        study that is not there raises :class:`StoreMissing` with one line."""
        path = sqlite_path(storage)
        if path is not None:
            if not path.is_file():
                raise StoreMissing(f"{path} is missing")
            with open(path, "rb") as fh:
                header = fh.read(16)
            if header != b"SQLite format 3\x00":
                raise StoreMissing(f"{path} is {'empty' if not header else 'not an SQLite database (damaged?)'}")
            if _study_names(path) is None:  # opening it would write Optuna's tables into someone's database
                raise StoreMissing(f"{path} is an SQLite database without Optuna's tables, not a trial store")
            if read_only:  # '#', '?' or '%' in a path would change which file SQLite opens: quoted
                # twice, as SQLAlchemy decodes the URL once and SQLite the file: URI once more
                quoted = urllib.parse.quote(urllib.parse.quote(str(path)))
                storage = f"sqlite:///file:{quoted}?mode=ro&uri=true"
        try:
            return cls(storage, study_name, objectives, create=False, pruner=pruner)
        except KeyError:
            raise StoreMissing(f"the store {storage} holds no study {study_name!r}") from None
        except Exception as exc:  # sqlalchemy / optuna: a damaged file, a schema of another version
            raise StoreMissing(f"cannot read {path or storage}: {str(exc).splitlines()[0]}") from None

    # -- reading ------------------------------------------------------------------------------
    def records(self, order: str = "number") -> list[TrialRecord]:
        """Finished trials (not interrupted, not superseded), by trial ``number`` or in the
        order their results were ``told``."""
        out = [r for t in self.study.get_trials(deepcopy=False) if (r := _record(t)) is not None]
        if order == "told":
            return sorted(out, key=lambda r: (r.told, r.number))
        return sorted(out, key=lambda r: r.number)

    def status(self, number: int, grace: float = 60.0) -> tuple[str, TrialRecord | None]:
        """Where trial ``number`` stands: ``("done", record)``, ``("running", None)`` while its
        process lives, or ``("gone", None)`` (interrupted, given up, or its process died)."""
        trials = self.study.get_trials(deepcopy=False)
        t = trials[number] if number < len(trials) else None
        if t is None:
            return "gone", None
        rec = _record(t)
        if rec is not None:
            return "done", rec
        if t.state == TrialState.RUNNING and _trial_alive(t, time.time(), grace):
            return "running", None
        return "gone", None

    def arch(self, number: int) -> dict[str, Any] | None:
        """The architecture stored with trial ``number`` (any state), or None when there is no
        such trial; reads that one trial's attributes, not the whole study."""
        storage = self.study._storage  # Study exposes no public per-number look-up
        try:
            trial_id = storage.get_trial_id_from_study_id_trial_number(self.study._study_id, int(number))
            arch = storage.get_trial_user_attrs(trial_id).get("arch")
        except KeyError:
            return None
        return dict(arch) if isinstance(arch, Mapping) else None

    def stale(self, grace: float = 60.0) -> list[int]:
        """Numbers of RUNNING trials whose owning process is gone (see the module docstring)."""
        now = time.time()
        out = []
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if not _trial_alive(t, now, grace):
                out.append(t.number)
        return out

    def mark_interrupted(self, grace: float = 60.0) -> int:
        """Fail every stale RUNNING trial (left by a killed process); returns how many."""
        stale = set(self.stale(grace))
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.number not in stale:
                continue
            trial = optuna.Trial(self.study, t._trial_id)  # FrozenTrial has no public id
            trial.set_user_attr("interrupted", True)
            trial.set_user_attr("error", "interrupted before it finished; evaluated again on resume")
            self.study.tell(trial, state=TrialState.FAIL)
        return len(stale)

    def claim(self, trial: optuna.Trial, key: str, grace: float = 60.0) -> int | None:
        """None when ``trial`` (just started for arch ``key``) holds it; else the number of the
        earlier live or finished trial that does, and ``trial`` is given up (``superseded``)."""
        now = time.time()
        for t in self.study.get_trials(deepcopy=False):
            if t.number >= trial.number or t.user_attrs.get("arch_key") != key:
                continue
            if t.user_attrs.get("interrupted") or t.user_attrs.get("superseded"):
                continue
            if t.state == TrialState.RUNNING and not _trial_alive(t, now, grace):
                continue
            self.give_up(trial, f"architecture already held by trial {t.number}")
            return t.number
        return None

    def give_up(self, trial: optuna.Trial, why: str) -> None:
        """End a started trial that will not be evaluated here (ignored like an interrupted one)."""
        trial.set_user_attr("superseded", True)
        trial.set_user_attr("error", why)
        self.study.tell(trial, state=TrialState.FAIL)

    def beat(self, trial: optuna.Trial) -> None:
        """Refresh the heartbeat of a running trial (see :class:`Heartbeat`)."""
        trial.set_user_attr("heartbeat", time.time())

    # -- scorings (see the module docstring) ------------------------------------------------
    def _scoring(self, create: bool) -> optuna.Study | None:
        if self._scoring_study is None:
            name = f"{self.study_name}:supernet"
            storage = self.study._storage  # the same storage (and connection) as the trials
            if create:
                self._scoring_study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                                          load_if_exists=True)
            else:
                try:
                    self._scoring_study = optuna.load_study(storage=storage, study_name=name)
                except KeyError:
                    return None
        return self._scoring_study

    def record_scorings(self, scorings: Sequence[Scoring]) -> None:
        """Store scorings (each ``score``: larger is better) in one batch."""
        study = self._scoring(create=True)
        assert study is not None
        now = time.time_ns()
        study.add_trials(optuna.trial.create_trial(value=float(s.score), user_attrs={
            "arch": dict(s.arch), "arch_key": arch_key(s.arch), "arch_str": s.arch_str,
            "proposal": {"parent": None, "inherit": "supernet", "note": s.note},
            "metrics": {k: float(v) for k, v in s.metrics.items()}, "duration_s": round(s.duration, 6), "told": now,
        }) for s in scorings)

    def scorings(self) -> list[TrialRecord]:
        """Every stored scoring, by number (empty when the run made none)."""
        study = self._scoring(create=False)
        if study is None:
            return []
        return [r for t in study.get_trials(deepcopy=False) if (r := _record(t)) is not None]

    # -- writing ------------------------------------------------------------------------------
    def start(self, arch: Arch, arch_str: str = "", proposal: Mapping[str, Any] | None = None) -> optuna.Trial:
        trial = self.study.ask()
        trial.set_user_attr("arch", dict(arch))
        trial.set_user_attr("arch_key", arch_key(arch))
        trial.set_user_attr("owner", OWNER)
        trial.set_user_attr("heartbeat", time.time())
        if arch_str:
            trial.set_user_attr("arch_str", arch_str)
        if proposal and any(v not in (None, "") for v in proposal.values()):
            trial.set_user_attr("proposal", dict(proposal))
        return trial

    def complete(
        self, trial: optuna.Trial, metrics: Mapping[str, float], values: Sequence[float], violation: float, duration: float
    ) -> None:
        trial.set_user_attr("metrics", {k: float(v) for k, v in metrics.items()})
        trial.set_user_attr("violation", float(violation))
        trial.set_user_attr("duration_s", round(duration, 6))
        trial.set_user_attr("told", time.time_ns())
        self.study.tell(trial, list(values))

    def fail(
        self,
        trial: optuna.Trial,
        error: str,
        duration: float,
        metrics: Mapping[str, float] | None = None,
        *,
        pruned: bool = False,
        interrupted: bool = False,
        traceback: str = "",
    ) -> None:
        if traceback:
            trial.set_user_attr("traceback", traceback[-4000:])
        if metrics:
            trial.set_user_attr("metrics", {k: float(v) for k, v in metrics.items() if math.isfinite(float(v))})
        trial.set_user_attr("error", error)
        trial.set_user_attr("duration_s", round(duration, 6))
        if interrupted:
            trial.set_user_attr("interrupted", True)
        trial.set_user_attr("told", time.time_ns())
        self.study.tell(trial, state=TrialState.PRUNED if pruned else TrialState.FAIL)


def _record(t: optuna.trial.FrozenTrial) -> TrialRecord | None:
    a = t.user_attrs
    if t.state == TrialState.RUNNING or a.get("interrupted") or a.get("superseded") or "arch" not in a:
        return None
    state = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}.get(t.state, "failed")
    return TrialRecord(
        number=t.number,
        arch=dict(a["arch"]),
        key=a.get("arch_key") or arch_key(a["arch"]),
        state=state,
        metrics=dict(a.get("metrics", {})),
        values=tuple(t.values) if t.values is not None and state == "complete" else None,
        violation=float(a.get("violation", 0.0)),
        duration_s=float(a.get("duration_s", 0.0)),
        error=str(a.get("error", "")),
        arch_str=str(a.get("arch_str", "")),
        told=int(a.get("told", 0)),
        proposal=dict(a.get("proposal", {})),
        traceback=str(a.get("traceback", "")),
    )


def _process_start(pid: int) -> str:
    """The start time of process ``pid`` in clock ticks since boot ("" where /proc is missing)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


OWNER: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid(), "start": _process_start(os.getpid())}


def _trial_alive(t: optuna.trial.FrozenTrial, now: float, grace: float) -> bool:
    """:func:`_alive` for a stored trial. One that another process has just asked for has no
    ``owner`` or ``heartbeat`` yet (they are written right after ``ask``): its start time stands
    in for the heartbeat, so a concurrent ``--resume`` never fails it as interrupted."""
    started = t.datetime_start.timestamp() if t.datetime_start is not None else 0.0
    return _alive(t.user_attrs.get("owner"), float(t.user_attrs.get("heartbeat", started)), now, grace)


def _alive(owner: Any, heartbeat: float, now: float, grace: float) -> bool:
    """Whether the process that runs a trial still does: by its pid on this host, else by the
    age of its heartbeat."""
    if isinstance(owner, Mapping) and owner.get("host") == OWNER["host"] and owner.get("pid"):
        pid = int(owner["pid"])
        if pid == OWNER["pid"] and owner.get("start") == OWNER["start"]:
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        start = _process_start(pid)
        return not owner.get("start") or not start or start == owner.get("start")
    return now - heartbeat <= grace


class Heartbeat:
    """A daemon thread that refreshes the heartbeat of this process's running trials."""

    def __init__(self, store: TrialStore, interval: float = 10.0) -> None:
        self.store, self.interval = store, float(interval)
        self.trials: dict[int, optuna.Trial] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="automl-heartbeat", daemon=True)
        self._thread.start()

    def add(self, trial: optuna.Trial) -> None:
        with self._lock:
            self.trials[trial.number] = trial

    def remove(self, trial: optuna.Trial) -> None:
        with self._lock:
            self.trials.pop(trial.number, None)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                trials = list(self.trials.values())
            for trial in trials:
                try:
                    self.store.beat(trial)
                except Exception:  # a finished trial or a busy database: the next beat tries again
                    pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 1)
