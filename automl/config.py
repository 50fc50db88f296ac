"""Run configuration: a YAML file and/or CLI flags, validated once, written to ``config.yaml``.

```yaml
space: nb201                      # or {name: nb201, <options>}
controller: {name: evolution, population: 10, sample_size: 3}
evaluators:
  - {name: nb201-table, table: ../shared/benchmarks/nb201_cifar10.csv}
objectives: ["valid_acc:max"]     # METRIC:max|min, several allowed
constraints: []                   # e.g. ["latency_ms<=20"]
mnas_reward: null                 # e.g. {accuracy: val_acc, latency: latency_ms, target: 20}
budget: 100
seed: 0
run_dir: runs/nb201-evo
```
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from automl.objectives import SpecError, parse_constraint, parse_mnas, parse_objective


@dataclass
class Component:
    """A named space, controller or evaluator with its keyword options."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, value: Any, what: str) -> Component:
        if isinstance(value, Component):
            return value
        if isinstance(value, str) and value.strip():
            return cls(value.strip())
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            options = {k: v for k, v in value.items() if k != "name"}
            return cls(value["name"], options)
        raise SpecError(f"bad {what} {value!r}: expected a name or a mapping with 'name' and options")

    def to_yaml(self) -> Any:
        return {"name": self.name, **self.options} if self.options else self.name


DEFAULT_CONTROLLER = "evolution"


def _declared(space_name: str) -> Any:
    """The space class registered as ``space_name`` (None when it cannot be resolved: the run
    set-up reports that with its own message)."""
    from automl import registry

    try:
        return registry.resolve("space", space_name)
    except registry.RegistryError:
        return None


class _Loader(yaml.SafeLoader):
    """YAML with 1.2 floats: ``3e-3`` and ``1e4`` are numbers (PyYAML's YAML 1.1 reads them as
    strings); a key given twice in one mapping is an error (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = str(self.construct_scalar(key_node))
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _Dumper(yaml.SafeDumper):
    """Writes strings such as ``"1e3"`` quoted, so :func:`load_yaml` reads them back as strings."""


_FLOAT_12 = re.compile(r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|\.[0-9_]+(?:[eE][-+]?[0-9]+)?"
                       r"|[0-9][0-9_]*[eE][-+]?[0-9]+|\.inf|\.Inf|\.INF|\.nan|\.NaN|\.NAN)$")
for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` with YAML 1.2 floats (config files and ``--set`` values)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


@dataclass
class RunConfig:
    """Everything a run needs; ``validate`` checks syntax, the run loop checks names."""

    space: Component = field(default_factory=lambda: Component("nb201"))
    controller: Component = field(default_factory=lambda: Component(DEFAULT_CONTROLLER))
    evaluators: list[Component] = field(default_factory=list)
    objectives: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    budget: int = 100
    seed: int = 0
    run_dir: str | None = None
    storage: str | None = None
    study_name: str | None = None
    dataset: str | None = None
    device: str = "cpu"
    pruner: str = "none"
    mnas_reward: Any = None
    executor: str = "local"
    workers: int = 1
    ray_address: str | None = None
    trial_cpus: float = 1.0
    trial_gpus: float = 0.0
    trial_timeout: float | None = None
    time_limit: float | None = None  # seconds from the run's start: no trial starts after, training stops at it
    retries: int = 0
    scheduler: str = "none"
    reference: str | None = None  # SPACE:PRESET trained like the best trial after the search (automl.reference)
    quick: bool = True  # the space's quick (demo) settings fill components left without options
    _given: set[str] = field(default_factory=set, repr=False)  # keys set explicitly (file or flags)
    _quick_used: set[str] = field(default_factory=set, repr=False)  # components the quick settings filled
    _evaluator_sets: bool = field(default=False, repr=False)  # an evaluator option was --set

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls) if not f.name.startswith("_")]

    @classmethod
    def from_mapping(cls, data: dict[str, Any], source: str = "config") -> RunConfig:
        if not isinstance(data, dict):
            raise SpecError(f"{source}: expected a mapping of keys, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.keys()))
        if unknown:
            raise SpecError(f"{source}: unknown key(s) {', '.join(unknown)}; accepted: {', '.join(cls.keys())}")
        cfg = cls()
        for key, value in data.items():
            cfg.set(key, value)
        return cfg

    @classmethod
    def from_file(cls, path: str | Path) -> RunConfig:
        p = Path(path)
        if p.is_dir():
            raise SpecError(f"--config {p}: is a folder; expected a YAML run configuration file")
        if not p.is_file():
            raise SpecError(f"config file not found: {p}")
        try:
            data = load_yaml(p.read_text())
            if data is None:  # an empty or comment-only file would silently run the default search
                raise SpecError(f"{p}: holds no settings (empty); expected a YAML mapping, e.g. space: nb201")
        except UnicodeDecodeError:
            raise SpecError(f"{p}: not a text file (not UTF-8); expected a YAML run configuration") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            why = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
            if context and start is not None:
                why += f" ({context} that starts at line {start.line + 1})"
            raise SpecError(f"{p}: not valid YAML{where}: {why}") from None
        return cls.from_mapping(data, source=str(p))

    def set(self, key: str, value: Any) -> None:
        """Set one key with type checking (used for YAML keys and CLI overrides alike)."""
        if key in ("space", "controller"):
            value = Component.parse(value, key)
        elif key == "evaluators":
            if isinstance(value, (str, dict)):
                value = [value]
            if not isinstance(value, list):
                raise SpecError(f"evaluators: expected a list, got {value!r}")
            value = [Component.parse(v, "evaluator") for v in value]
        elif key in ("objectives", "constraints"):
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SpecError(f"{key}: expected a list of strings, got {value!r}")
            parse = parse_objective if key == "objectives" else parse_constraint
            for v in value:
                parse(v)
        elif key in ("trial_cpus", "trial_gpus", "trial_timeout", "time_limit"):
            if value is not None or key not in ("trial_timeout", "time_limit"):
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    raise SpecError(f"{key}: expected a number, got {value!r}") from None
            if key == "time_limit" and value is not None:
                if not 0 <= value < math.inf:
                    raise SpecError(f"time_limit: expected a number of seconds > 0 (0: no limit), got {value!r}")
                value = value or None  # 0: no limit, not even the quick settings' one
        elif key in ("budget", "seed", "workers", "retries"):
            if isinstance(value, bool) or not isinstance(value, int):
                try:
                    value = int(str(value))
                except ValueError:
                    raise SpecError(f"{key}: expected an integer, got {value!r}") from None
            if key == "budget" and value < 1:
                raise SpecError(f"budget: expected a positive integer, got {value}")
            if key == "seed" and not 0 <= value < 2**32:
                raise SpecError(f"seed: expected an integer from 0 to 2**32-1, got {value}")
        elif key == "quick":
            if not isinstance(value, bool):
                raise SpecError(f"quick: expected true or false, got {value!r}")
        elif key == "mnas_reward":
            if value is not None:
                parse_mnas(value)
        elif key == "pruner":
            if value not in ("none", "median", "successive-halving"):
                raise SpecError(f"pruner: {value!r} is not one of none, median, successive-halving")
        elif key in ("executor", "scheduler"):
            from automl.executors import EXECUTORS, SCHEDULERS

            accepted = EXECUTORS if key == "executor" else SCHEDULERS
            if value not in accepted:
                raise SpecError(f"{key}: {value!r} is not one of {', '.join(accepted)}")
        elif key in ("run_dir", "storage", "study_name", "dataset", "device", "ray_address", "reference"):
            if value is not None and not isinstance(value, str):
                raise SpecError(f"{key}: expected a string, got {value!r}")
            if value == "" and key in ("run_dir", "storage", "study_name"):
                raise SpecError(f"{key}: empty; give a {'name' if key == 'study_name' else 'folder' if key == 'run_dir' else 'URL'} "
                                "or leave it out for the default")
        else:
            raise SpecError(f"unknown key {key!r}; accepted: {', '.join(self.keys())}")
        setattr(self, key, value)
        self._given.add(key)

    def quick_settings(self) -> dict[str, Any] | None:
        """The zero-flag settings the space declares for this controller (``quick_settings``)."""
        space = _declared(self.space.name)
        quick = getattr(space, "quick_settings", {}) or {}
        return dict(quick[self.controller.name]) if self.controller.name in quick else None

    def fill_defaults(self) -> list[str]:
        """Fill unset parts from what the space declares (``quick_settings`` for this
        controller unless ``quick`` is false, else ``default_evaluators``); the components whose
        quick settings were *not* used because options were given (for a note to the user)."""
        skipped: list[str] = []
        quick = self.quick_settings() if self.quick else None
        if quick is not None:
            for comp in ("space", "controller"):
                component = getattr(self, comp)
                if not quick.get(comp) or component.options == quick[comp]:
                    continue
                if component.options:
                    skipped.append(comp)
                else:
                    component.options = dict(quick[comp])
                    self._quick_used.add(comp)
            if not self.evaluators and quick.get("evaluators"):
                self.evaluators = [Component.parse(dict(e), "evaluator") for e in quick["evaluators"]]
                self._quick_used.add("evaluators")
            # The quick budget belongs to the quick controller settings: not used beside the user's own.
            if "budget" not in self._given and "budget" in quick and "controller" not in skipped:
                self.budget = int(quick["budget"])
            if "reference" not in self._given and quick.get("reference") and "controller" not in skipped:
                self.reference = str(quick["reference"])
            # The quick time limit fits the quick search and retrain: not used beside the user's own
            # controller or evaluator options (e.g. --set train.epochs=30 trains all 30 epochs).
            # fill_defaults runs again after an evaluator's --set (set_evaluator_option): the limit then goes.
            if "time_limit" not in self._given:
                fits = "controller" not in skipped and "evaluators" in self._quick_used and not self._evaluator_sets
                self.time_limit = float(quick["time_limit"]) if quick.get("time_limit") and fits else None
        if not self.evaluators:
            defaults = getattr(_declared(self.space.name), "default_evaluators", ("train",)) or ("train",)
            self.evaluators = [Component.parse(dict(e) if isinstance(e, dict) else e, "evaluator") for e in defaults]
        return skipped

    def refuse_empty_lists(self, source: str) -> None:
        """SpecError when ``source`` (a user's file) gave ``evaluators`` or ``objectives`` as an
        empty list, which would quietly mean the defaults. A dumped config may hold them empty
        (a run not yet set up), so only user input is checked."""
        if self.given("evaluators") and not self.evaluators:
            raise SpecError(f"{source}: evaluators is an empty list; name at least one (e.g. [train]) or leave the "
                            "key out for the space's defaults")
        if self.given("objectives") and not self.objectives:
            raise SpecError(f"{source}: objectives is an empty list; give METRIC:max|min entries (e.g. [val_acc:max]) "
                            "or leave the key out for the evaluators' default")

    def set_evaluator_option(self, evaluator: Component, key: str, value: Any) -> None:
        """``--set EVALUATOR.KEY=VALUE`` on one of this run's evaluators (the quick ones included)."""
        evaluator.options[key] = value
        self._evaluator_sets = True
        if "time_limit" not in self._given:
            self.time_limit = None  # the quick limit fits the quick evaluators only

    def given(self, key: str) -> bool:
        """Whether ``key`` was set explicitly (config file, flag or :meth:`set`), not by a default."""
        return key in self._given

    def quick_used(self) -> list[str]:
        """The parts (space, controller, evaluators) that :meth:`fill_defaults` took from the
        quick settings."""
        return [part for part in ("space", "controller", "evaluators") if part in self._quick_used]

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if not k.startswith("_")}
        out["space"] = self.space.to_yaml()
        out["controller"] = self.controller.to_yaml()
        out["evaluators"] = [e.to_yaml() for e in self.evaluators]
        return out

    def dump(self, path: Path) -> None:
        path.write_text(yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False))
