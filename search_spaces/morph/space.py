"""``morph``: Auto-Keras's network-morphism space (Jin et al. 2019; Auto-Keras 0.3.7).

An architecture is a JSON layer graph (:mod:`search_spaces.morph.arch`) grown from a start
network by function-preserving morphisms (:mod:`search_spaces.morph.morphisms`): ``deeper``,
``wider`` and ``skip`` (add or concat). ``neighbors`` is Auto-Keras's ``transform`` and
``transfer`` maps a trained parent's weights into a child by layer id so that the child starts
from the parent's function (:mod:`search_spaces.morph.transfer`).

Deviations from Auto-Keras 0.3.7:

* ``deeper`` inserts a whole [conv k, bn, relu] block after a relu of the main chain (Auto-Keras
  inserts one conv, bn or relu layer after a random layer); ``k`` is drawn from {1, 3, 5};
* a skip's projection belongs to its merge node: ``add`` = main + conv1x1(pool(skip)) with the
  conv zero-initialised, ``concat`` = conv1x1(cat(main, pool(skip))) initialised to ``[I | 0]``
  (Auto-Keras adds separate pooling / conv layers on the skip path and a merge layer); the skip
  is pooled by one max-pool of ``2 ** levels`` rather than a copy of the main chain's pools;
* ``wider`` doubles a conv's filters up to ``max_width`` (any conv, the last one too; there are
  no dense layers but the head) and new filter ``j`` copies filter ``j mod c`` (Auto-Keras:
  randomly chosen filters); readers get zero weights on the copies, as in Auto-Keras;
* new BN layers get running variance ``1 - eps`` so that they are the exact identity in eval
  mode; noise (1e-4 x weight range) goes onto weights only, not biases or BN;
* ``sample`` always returns the start network (Auto-Keras always starts from its seed nets);
  ``mutate`` is one random morphism; duplicates are dropped from ``neighbors``;
* ``max_params`` is counted from the graph for the space's default task (Auto-Keras: the model
  size of the actual graph); ``max_layers`` counts every entry of ``layers`` (input and head
  too); there is no dropout and no dense layer other than the head.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Any, ClassVar

import networkx as nx
import numpy as np
from torch import nn

from automl.types import Arch, Task, arch_key
from search_spaces.base import SearchSpace
from search_spaces.morph.arch import num_params, validate_arch, widest
from search_spaces.morph.graph import to_graph
from search_spaces.morph.morphisms import KINDS, random_morph
from search_spaces.morph.network import MorphNetwork, check_task
from search_spaces.morph.presets import STARTS
from search_spaces.morph.text import describe_arch, parse_arch
from search_spaces.morph.transfer import transfer_weights


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"morph: {name} must be a positive integer, got {value!r}")
    return value


class MorphSpace(SearchSpace):
    """Auto-Keras network morphisms (deeper / wider / skip) on a layer graph."""

    name: ClassVar[str] = "morph"
    description: ClassVar[str] = "Auto-Keras network morphisms: deeper/wider/skip from a seed CNN, function-preserving"
    offers: ClassVar[frozenset[str]] = frozenset({"graph", "neighbors"})
    default_task: ClassVar[Task] = Task("classification", 3, (32, 32), 10)
    # Children start from their parent's weights through the morphism (Auto-Keras), and stop
    # training after 3 epochs without a validation-loss drop (Auto-Keras: 5, of up to 200).
    default_evaluators: ClassVar[tuple[Any, ...]] = (
        {"name": "train", "epochs": 10, "patience": 3, "inherit_weights": True},
    )
    # Zero flags: Auto-Keras's 2**25-parameter cap suits a GPU; one ask of the tree search can
    # chain several wider morphs, and a 33M-parameter child took 6 s per step on the 2-core CPU.
    quick_settings: ClassVar[Mapping[str, Mapping[str, Any]]] = {
        "bayes": {"space": {"max_params": 2**21}},
    }

    def __init__(self, start: str = "cnn", width: int = 64, depth: int = 3, max_layers: int = 200,
                 max_width: int = 4096, max_params: int = 2**25) -> None:
        super().__init__()
        if start not in STARTS:
            raise ValueError(f"morph: unknown start {start!r}; choose from {', '.join(STARTS)}")
        self.width, self.depth = _positive_int("width", width), _positive_int("depth", depth)
        self.max_layers = _positive_int("max_layers", max_layers)
        self.max_width = _positive_int("max_width", max_width)
        self.max_params = _positive_int("max_params", max_params)
        self.start = start
        self.start_arch = self.validate(STARTS[start](self.width, self.depth))
        params = self.num_params(self.start_arch)
        if params > self.max_params:
            raise ValueError(f"morph: the {start} start has {params} parameters > max_params={self.max_params}")

    # -- presets ----------------------------------------------------------------------------
    @classmethod
    def presets(cls) -> dict[str, dict[str, Any]]:
        """The start networks (``cnn``, ``resnet``) at the default width 64 and depth 3."""
        return {name: validate_arch(make()) for name, make in STARTS.items()}

    def preset(self, name: str) -> dict[str, Any]:
        """A start network at this space's width and depth."""
        if name not in STARTS:
            raise KeyError(f"unknown morph preset {name!r}; known: {sorted(STARTS)}")
        return self.validate(STARTS[name](self.width, self.depth))

    # -- architectures ----------------------------------------------------------------------
    def validate(self, arch: Arch) -> dict[str, Any]:
        return validate_arch(arch, self.max_layers, self.max_width)

    def num_params(self, arch: Arch, task: Task | None = None) -> int:
        """Parameters of the built network for ``task`` (default: the space's), from the graph."""
        task = task or self.default_task
        return num_params(validate_arch(arch), task.in_channels, task.num_classes)

    def fits(self, arch: Arch) -> bool:
        """Whether ``arch`` (valid) keeps within ``max_layers``, ``max_width`` and ``max_params``."""
        task = self.default_task
        return (len(arch["layers"]) <= self.max_layers and widest(arch) <= self.max_width
                and num_params(arch, task.in_channels, task.num_classes) <= self.max_params)

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """The start network (Auto-Keras always starts from its seed network; ``rng`` unused)."""
        return json.loads(json.dumps(self.start_arch))

    def neighbors(self, arch: Arch, rng: np.random.Generator, limit: int = 8) -> list[dict[str, Any]]:
        """Auto-Keras ``transform``: up to ``2 * limit`` uniformly drawn morphisms (deeper, wider,
        skip), kept when within the limits and new; at most ``limit``."""
        arch = self.validate(arch)
        seen, out = {arch_key(arch)}, []
        for _ in range(2 * max(limit, 0)):
            child = random_morph(arch, KINDS[int(rng.integers(len(KINDS)))], rng, self.max_width)
            if child is None or not self.fits(child) or arch_key(child) in seen:
                continue
            seen.add(arch_key(child))
            out.append(child)
            if len(out) >= limit:
                break
        return out

    def mutate(self, arch: Arch, rng: np.random.Generator) -> dict[str, Any]:
        """One random morphism that keeps within the limits (kinds tried in random order)."""
        arch = self.validate(arch)
        for k in rng.permutation(len(KINDS)):
            for _ in range(4):
                child = random_morph(arch, KINDS[int(k)], rng, self.max_width)
                if child is not None and self.fits(child):
                    return child
        raise ValueError(f"morph: no morphism of this architecture keeps within max_layers={self.max_layers}, "
                         f"max_width={self.max_width}, max_params={self.max_params}")

    # -- networks ---------------------------------------------------------------------------
    def build(self, arch: Arch, task: Task | None = None) -> nn.Module:
        task = task or self.default_task
        check_task(task)
        return MorphNetwork(self.validate(arch), task)

    def graph(self, arch: Arch) -> nx.DiGraph:
        return to_graph(self.validate(arch), self.default_task)

    def transfer(self, parent_arch: Arch, parent_state: Mapping[str, Any], child_arch: Arch, child: nn.Module,
                 noise: float = 1e-4, seed: int | None = None) -> int:
        """Function-preserving transfer by layer id (:mod:`search_spaces.morph.transfer`); noise
        of ``noise`` x weight range on new weights, drawn from ``seed`` (default: from the
        child's key); returns how many tensors came from the parent."""
        parent_arch, child_arch = validate_arch(parent_arch), validate_arch(child_arch)
        task = getattr(child, "task", None) or self.default_task
        if seed is None:
            seed = zlib.crc32(arch_key(child_arch).encode())
        return transfer_weights(parent_arch, parent_state, child_arch, child, task.in_channels, noise, seed)

    # -- presentation -----------------------------------------------------------------------
    def describe(self, arch: Arch) -> str:
        return describe_arch(self.validate(arch))

    def parse(self, text: str) -> dict[str, Any]:
        if text.lstrip().startswith("{"):
            return super().parse(text)
        return self.validate(parse_arch(text))
