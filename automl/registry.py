"""Name -> implementation for spaces, controllers and evaluators.

Resolution order for a name: the built-in table below, then the Python entry points of the
groups ``automl.spaces`` / ``automl.controllers`` / ``automl.evaluators`` (how third-party
packages add theirs), then a ``module:attr`` path. Built-ins are listed as import paths and
only imported when used or listed, so start-up stays fast.
"""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Literal

from controllers.base import Controller
from evaluators.base import Evaluator, FunctionEvaluator
from search_spaces.base import CAPABILITIES, SearchSpace

Kind = Literal["space", "controller", "evaluator"]

BUILTIN: dict[str, dict[str, str]] = {
    "space": {
        "nb201": "search_spaces.nb201:NB201Space",
        "seg-unet": "search_spaces.seg_unet:SegUNetSpace",
        "darts": "search_spaces.darts:DartsSpace",
        "seg-hierarchical": "search_spaces.seg_hierarchical:SegHierarchicalSpace",
        "macro": "search_spaces.macro:MacroSpace",
        "nasnet": "search_spaces.nasnet:NasnetSpace",
        "morph": "search_spaces.morph:MorphSpace",
        "cr-resnet": "search_spaces.cr_resnet:CRResNetSpace",
        "mobile": "search_spaces.mobile:MobileSpace",
        "video": "search_spaces.video:VideoSpace",
    },
    "controller": {
        "random": "controllers.random_search:RandomSearch",
        "evolution": "controllers.evolution:RegularizedEvolution",
        "tpe": "controllers.optuna_sampler:TPEController",
        "nsga2": "controllers.optuna_sampler:NSGA2Controller",
        "darts": "controllers.oneshot.darts:DartsController",
        "rl": "controllers.rl.controller:RLController",
        "bayes": "controllers.bayes.controller:BayesController",
        "cr": "controllers.oneshot.cr:CRController",
    },
    "evaluator": {
        "nb201-table": "evaluators.nb201_table:NB201TableEvaluator",
        "train": "evaluators.train:TrainEvaluator",
        "cost": "evaluators.cost:CostEvaluator",
        "latency": "evaluators.latency:LatencyEvaluator",
        "latency-lut": "evaluators.latency_lut:LatencyLUTEvaluator",
    },
}
GROUPS: dict[str, str] = {
    "space": "automl.spaces",
    "controller": "automl.controllers",
    "evaluator": "automl.evaluators",
}
BASES: dict[str, type] = {"space": SearchSpace, "controller": Controller, "evaluator": Evaluator}


class RegistryError(ValueError):
    """An unknown name or a path that cannot be imported."""


def _entry_points(kind: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUPS[kind])}


def _import(path: str) -> Any:
    """``package.module:attr`` or ``path/to/file.py:attr``."""
    module_name, _, attr = path.rpartition(":")
    if not module_name or not attr:
        raise RegistryError(f"{path!r} is not a module:attr path")
    try:
        module = _load_file(module_name) if module_name.endswith(".py") else importlib.import_module(module_name)
    except ImportError as exc:
        raise RegistryError(f"cannot import {path!r}: {exc}") from exc
    try:
        obj: Any = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError as exc:
        raise RegistryError(f"cannot import {path!r}: {module_name} has no {attr!r}") from exc
    return obj


def _load_file(filename: str) -> Any:
    import importlib.util
    import sys
    from pathlib import Path

    file = Path(filename).resolve()
    if not file.is_file():
        raise ImportError(f"no such file {filename}")
    name = f"automl_user_{file.stem}_{abs(hash(str(file)))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ImportError(f"{type(exc).__name__}: {exc}") from exc
    return module


def names(kind: Kind) -> list[str]:
    """Built-in names first, then installed plug-ins."""
    builtin = list(BUILTIN[kind])
    return builtin + sorted(n for n in _entry_points(kind) if n not in BUILTIN[kind])


def resolve(kind: Kind, name: str) -> Any:
    """The class (or function, for evaluators) registered under ``name``."""
    if name in BUILTIN[kind]:
        return _import(BUILTIN[kind][name])
    eps = _entry_points(kind)
    if name in eps:
        try:
            return eps[name].load()
        except Exception as exc:  # a broken plug-in must not crash listing with a traceback
            raise RegistryError(f"plug-in {kind} {name!r} failed to load: {exc}") from exc
    if ":" in name:
        return _import(name)
    raise RegistryError(f"unknown {kind} {name!r}; choose from: {', '.join(names(kind))} (or give module:attr)")


def create(kind: Kind, name: str, options: dict[str, Any] | None = None) -> Any:
    """Instantiate ``name`` with ``options``; bad options give a one-line RegistryError."""
    obj = resolve(kind, name)
    options = dict(options or {})
    if kind == "evaluator" and not inspect.isclass(obj):
        if inspect.isfunction(obj) or inspect.ismethod(obj):
            if options:
                raise RegistryError(f"evaluator {name!r} is a function and takes no options {sorted(options)}")
            return FunctionEvaluator(obj)
        if hasattr(obj, "evaluate"):  # an already-built evaluator instance
            if options:
                raise RegistryError(f"evaluator {name!r} is an instance and takes no options {sorted(options)}")
            return obj
    duck_evaluator = kind == "evaluator" and inspect.isclass(obj) and hasattr(obj, "evaluate")
    if not inspect.isclass(obj) or not (issubclass(obj, BASES[kind]) or duck_evaluator):
        raise RegistryError(f"{name!r} is not a {kind} (expected a subclass of {BASES[kind].__name__})")
    try:
        inspect.signature(obj).bind(**options)
    except TypeError:
        accepted = [p for p in inspect.signature(obj).parameters if p not in ("self", "args", "kwargs")]
        bad = sorted(set(options) - set(accepted))
        raise RegistryError(
            f"{kind} {name!r}: unknown option(s) {bad or sorted(options)}; accepted: {', '.join(accepted) or 'none'}"
        ) from None
    _check_types(obj, options, f"{kind} {name!r}")
    try:
        return obj(**options)
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"{kind} {name!r}: {exc}") from exc


_SIMPLE = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _accepts(hint: Any, value: Any) -> bool | None:
    """Whether ``value`` fits a simple annotation (None: the annotation is not one we check)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        answers = [_accepts(h, value) for h in typing.get_args(hint)]
        return None if any(a is None for a in answers) else any(answers)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return None


def _expected(hint: Any) -> str:
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(hint)))
    parts = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return " or ".join("null" if p is type(None) else _SIMPLE.get(p, _expected(p) if typing.get_args(p) else
                                                                   getattr(p, "__name__", str(p))) for p in parts)


def _check_types(obj: type, options: dict[str, Any], what: str) -> None:
    """Refuse an option whose value does not fit the constructor's simple annotation (int,
    float, bool, str, Literal, unions of them) in one line, before the constructor sees it."""
    try:
        hints = typing.get_type_hints(obj.__init__)
    except Exception:  # noqa: BLE001 - unresolvable annotations: the constructor checks itself
        return
    for key, value in options.items():
        if key in hints and _accepts(hints[key], value) is False:
            raise RegistryError(f"{what}: option {key} expects {_expected(hints[key])}, got {value!r}")


@dataclass(frozen=True)
class Entry:
    """One row of ``automl spaces|controllers|evaluators``."""

    name: str
    description: str
    detail: str


def describe(kind: Kind, name: str) -> Entry:
    try:
        obj = resolve(kind, name)
    except RegistryError as exc:
        return Entry(name, f"(unavailable: {exc})", "")
    doc = (inspect.getdoc(obj) or "").splitlines()
    description = getattr(obj, "description", "") or (doc[0] if doc else "")
    if kind == "space":
        offers = sorted(getattr(obj, "offers", ()))
        detail = "offers: " + (", ".join(offers) or "sample/mutate only")
    elif kind == "controller":
        requires = sorted(getattr(obj, "requires", ()))
        detail = "requires: " + (", ".join(requires) or "nothing beyond sample/mutate")
        if not getattr(obj, "multi_objective", False):
            detail += "; single objective"
    else:
        provides = ", ".join(getattr(obj, "provides", ())) or "?"
        report_only = ", ".join(getattr(obj, "report_only", ()))
        detail = f"provides: {provides}" + (f" (report-only: {report_only})" if report_only else "")
        detail += "; builds the model" if getattr(obj, "needs_model", True) else "; no model needed"
    return Entry(name, description, detail)


def check_compatible(space: SearchSpace, controller: Controller, space_name: str, controller_name: str) -> None:
    """Refuse a controller whose requirements the space does not offer, naming what fits."""
    missing = set(controller.requires) - set(space.offers)
    if not missing:
        return
    fits_c = []
    for cname in names("controller"):
        try:
            cls = resolve("controller", cname)
        except RegistryError:
            continue
        if set(getattr(cls, "requires", ())) <= set(space.offers):
            fits_c.append(cname)
    fits_s = []
    for sname in names("space"):
        try:
            cls = resolve("space", sname)
        except RegistryError:
            continue
        if set(controller.requires) <= set(getattr(cls, "offers", ())):
            fits_s.append(sname)
    raise RegistryError(
        f"controller {controller_name!r} requires {sorted(missing)} which space {space_name!r} does not offer "
        f"(it offers {sorted(space.offers) or 'none'} of {list(CAPABILITIES)}); controllers for this space: "
        f"{', '.join(fits_c) or 'none'}; spaces for this controller: {', '.join(fits_s) or 'none'}"
    )
