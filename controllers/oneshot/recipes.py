"""Each differentiable method's published search settings: the defaults of the ``darts`` controller.

An option the user does not give comes from, in this order: the space's paper for the method
(``SearchSpace.paper_settings["darts"]``, e.g. Auto-DeepLab's on ``seg-hierarchical``; it applies
to ``method=darts``, the relaxation those papers used, except its data settings (:data:`DATA_KEYS`,
the crop), which apply under every method), the method's paper (below), DARTS. The
architecture warm-up is a *fraction* of the epochs (PC-DARTS: α frozen for 15 of 50 epochs;
Auto-DeepLab: 20 of 40), so shortening ``epochs`` keeps the paper's proportion. Facts:
docs/algorithms.md §4–5.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# DARTS (Liu et al. 2019), CIFAR-10 search.
DARTS: dict[str, Any] = {
    "epochs": 50, "batch_size": 64, "w_lr": 0.025, "w_lr_min": 0.001, "w_weight_decay": 3e-4, "w_nesterov": False,
    "arch_lr": 3e-4, "arch_betas": (0.5, 0.999), "arch_weight_decay": 1e-3, "warmup_fraction": 0.0,
    "step_order": "arch_first", "crop_size": None,
}
METHOD_PAPERS: dict[str, dict[str, Any]] = {
    "darts": {},
    # PC-DARTS (Xu et al. 2020), CIFAR-10: batch 256, lr 0.1 cosine to 0, α lr 6e-4, α frozen 15 of 50 epochs.
    "pcdarts": {"batch_size": 256, "w_lr": 0.1, "w_lr_min": 0.0, "arch_lr": 6e-4, "warmup_fraction": 0.3},
    # GDAS (Dong & Yang 2019; AutoDL-Projects configs/search-opts/GDAS-NASNet-CIFAR.config): 250 epochs,
    # batch 256, SGD 0.025 -> 0.001 with Nesterov momentum and weight decay 5e-4, τ 10 -> 0.1, weights
    # updated before α.
    "gdas": {"epochs": 250, "batch_size": 256, "w_weight_decay": 5e-4, "w_nesterov": True, "step_order": "weights_first"},
}
# Settings of the space's data rather than of the optimisation: the space's paper gives them to every method.
DATA_KEYS: tuple[str, ...] = ("crop_size",)
# Options a recipe sets (the rest keep the controller's own defaults).
RECIPE_KEYS: tuple[str, ...] = ("epochs", "batch_size", "w_lr", "w_lr_min", "w_weight_decay", "w_nesterov", "arch_lr", "arch_betas",
                                "arch_weight_decay", "warmup_epochs", "step_order", "crop_size")


def recipe(method: str, space_settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The settings of ``method`` (with the space's paper settings for ``method=darts``, its data
    settings for every method)."""
    out = {**DARTS, **METHOD_PAPERS.get(method, {})}
    out.update(_from_space(method, space_settings))
    return out


def _from_space(method: str, space_settings: Mapping[str, Any] | None) -> dict[str, Any]:
    if not space_settings:
        return {}
    return dict(space_settings) if method == "darts" else {k: v for k, v in space_settings.items() if k in DATA_KEYS}


def resolve(method: str, given: Mapping[str, Any], space_settings: Mapping[str, Any] | None = None
            ) -> tuple[dict[str, Any], dict[str, str]]:
    """The recipe options with the ``given`` ones (not None) on top, and where each came from
    (``"given"``, ``"space"``, ``method`` or ``"darts"``)."""
    base = recipe(method, space_settings)
    chosen = {k: v for k, v in given.items() if v is not None}
    out, source = {}, {}
    for key in RECIPE_KEYS:
        if key in chosen:
            out[key], source[key] = chosen[key], "given"
        elif key == "warmup_epochs":
            epochs = chosen.get("epochs", base["epochs"])
            out[key] = round(base["warmup_fraction"] * epochs)
            source[key] = _origin("warmup_fraction", method, space_settings)
        else:
            out[key], source[key] = base[key], _origin(key, method, space_settings)
    return out, source


def _origin(key: str, method: str, space_settings: Mapping[str, Any] | None) -> str:
    if key in _from_space(method, space_settings):
        return "space"
    return method if key in METHOD_PAPERS.get(method, {}) else "darts"
