"""The search-space contract every controller works against.

An *architecture* (``Arch``) is a plain JSON-serialisable mapping. Its canonical identity is the
sorted JSON text (:func:`arch_key`), so two equal dicts are the same architecture everywhere:
in the trial store, the duplicate cache and the controllers' histories.

A space always offers ``sample`` / ``mutate`` / ``build``. What else it offers is declared in
``offers`` and checked against a controller's ``requires`` before a run starts:

=============  =================================================================
capability     meaning
=============  =================================================================
``decisions``  a finite list of named categorical choices (:class:`Decision`)
``graph``      ``graph(arch)`` returns the network's graph in the common form below
``neighbors``  ``neighbors(arch, rng, limit)``: morphed architectures (Auto-Keras); every
               ``decisions`` space has it too (its mutations)
``supernet``   ``supernet(task)`` returns a weight-sharing network
``lut``        ``lut_entries(task)`` / ``lut_keys(arch, task)``: latency look-up tables
``realloc``    ``reallocation()`` names the stage-allocation and per-block dilation decisions
               and ``single_path_supernet(task)`` returns a single-path supernet (CR-NAS;
               :mod:`search_spaces.supernet.single_path`)
=============  =================================================================
``transfer(parent_arch, parent_state, child_arch, child_model)`` loads a trained parent's weights
into a child (weight inheritance); by default every tensor whose name and shape match, in spaces
with network morphisms through the morphism (function-preserving).

**The graph form.** ``graph(arch)`` is a ``networkx.DiGraph`` whose nodes are tensors and whose
edges are operations (repeated cells appear once). Each edge carries ``op``, the operation's name
(drawn on the edge), and optionally ``ops`` (several ops between the same two tensors, summed)
and ``layers`` (the layers an op applies in order: dicts with ``type`` -- ``conv``, ``pool``,
``bn``, ``relu``, ``identity``, ``dense``, ... -- and numeric ``filters``, ``kernel``,
``stride``, ``dilation``, ``padding``); without ``layers`` they are read from the op's name by
:func:`op_layers` (``nor_conv_3x3``, ``sep_conv_5x5``, ``max_pool_3x3``, ``skip_connect`` ...).
An edge whose op is ``concat`` (or ``wire``) is a plain connection. A node where several edges
meet merges them by its ``merge`` attribute (``add`` unless it says ``concat``). Sources are
the network's inputs and sinks its outputs; a graph of several parts (the DARTS normal and
reduction cells) is read part by part in node order. Drawing (:mod:`automl.drawing`) and the
edit distance of the ``bayes`` controller read this one form.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from automl.types import Arch, Decision, Task, arch_key

if TYPE_CHECKING:  # torch and networkx are only needed by spaces that build networks
    import networkx as nx
    from torch import nn

CAPABILITIES = ("decisions", "graph", "neighbors", "supernet", "lut", "realloc")


class CapabilityError(TypeError):
    """A space was asked for something it does not offer."""


@dataclass(frozen=True)
class LutEntry:
    """One block configuration a space can produce, measured once for a latency look-up table.

    ``factory()`` builds the module; ``input_shapes`` are its inputs without the batch axis.
    With ``baseline`` (another entry's key) the table stores ``(measured - baseline) / per``:
    a replacement cost measured in context, e.g. "this op instead of the identity on one edge
    of a network's cells" when the module holds ``per`` such replacements.
    """

    factory: Callable[[], Any]
    input_shapes: tuple[tuple[int, ...], ...]
    baseline: str | None = None
    per: int = 1


class SearchSpace:
    """Base class of every search space.

    Subclasses set ``name``, ``description`` and ``offers`` and implement at least
    ``sample``, ``mutate`` and ``build``. Spaces built from decisions implement
    ``decisions`` and get ``sample``, ``mutate``, ``validate`` and ``size`` for free.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    offers: ClassVar[frozenset[str]] = frozenset()
    default_task: ClassVar[Task] = Task()
    # Evaluators a run uses when the user names none: names or {name: ..., option: ...} mappings.
    default_evaluators: ClassVar[tuple[Any, ...]] = ("train",)
    # Zero-flag settings per controller name, for pairs whose paper settings take GPU-days:
    # {"space": {...}, "controller": {...}, "evaluators": [...], "budget": N}; they fill only what
    # the user left unset (giving any option of a component drops that component's part).
    quick_settings: ClassVar[Mapping[str, Mapping[str, Any]]] = {}
    # The search settings of this space's paper, per controller name: the controller's defaults
    # for options the user leaves unset (e.g. Auto-DeepLab's on seg-hierarchical for darts).
    paper_settings: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    def __init__(self, **options: Any) -> None:
        if options:
            raise TypeError(
                f"space {self.name!r} takes no option {sorted(options)!r}"
            )

    # -- decisions ---------------------------------------------------------------------------
    def decisions(self) -> Sequence[Decision]:
        return ()

    def size(self) -> int | None:
        """Number of distinct architectures, when the space is finite."""
        decisions = self.decisions()
        if not decisions:
            return None
        n = 1
        for d in decisions:
            n *= len(d.choices)
        return n

    # -- presets -----------------------------------------------------------------------------
    @classmethod
    def presets(cls) -> dict[str, dict[str, Any]]:
        """Named architectures of the space at its default options (published networks to start
        from or to compare with); none by default."""
        return {}

    def preset(self, name: str) -> dict[str, Any]:
        """Preset ``name`` as an architecture of this space (KeyError naming the known ones)."""
        presets = self.presets()
        if name not in presets:
            raise KeyError(f"unknown {self.name} preset {name!r}; known: {sorted(presets) or 'none'}")
        return self.validate(dict(presets[name]))

    # -- the block catalogue ------------------------------------------------------------------
    def block_choices(self) -> dict[str, dict[str, Any]]:
        """The catalogue blocks (``search_spaces.blocks``) this space, at its options, can choose,
        each with one architecture of the space whose network contains that block:
        ``{"aspp": arch, ...}``. The coverage test builds every such architecture and checks that
        the block's class is in the network; none by default."""
        return {}

    def arch_with(self, value: Any, seed: int = 0) -> dict[str, Any]:
        """A sampled architecture in which every decision offering ``value`` takes it (for
        :meth:`block_choices` of spaces whose decisions name ops)."""
        arch = self.sample(np.random.default_rng(seed))
        for d in self.decisions():
            if value in d.choices:
                arch[d.name] = value
        return self.validate(arch)

    def validate(self, arch: Arch) -> dict[str, Any]:
        """Return ``arch`` as a plain dict or raise ``ValueError`` naming what is wrong."""
        decisions = self.decisions()
        if not decisions:
            return dict(arch)
        names = [d.name for d in decisions]
        missing = [n for n in names if n not in arch]
        extra = [k for k in arch if k not in names]
        if missing or extra:
            raise ValueError(
                f"{self.name}: architecture keys do not match the space "
                f"(missing {missing}, unknown {extra})"
            )
        for d in decisions:
            if arch[d.name] not in d.choices:
                raise ValueError(
                    f"{self.name}: {d.name}={arch[d.name]!r} is not one of {list(d.choices)}"
                )
        return {d.name: arch[d.name] for d in decisions}

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        decisions = self.decisions()
        if not decisions:
            raise CapabilityError(f"space {self.name!r} must implement sample()")
        return {d.name: d.choices[int(rng.integers(len(d.choices)))] for d in decisions}

    def mutate(self, arch: Arch, rng: np.random.Generator) -> dict[str, Any]:
        """Change exactly one decision to a different value (decisions with >1 choice)."""
        decisions = [d for d in self.decisions() if len(d.choices) > 1]
        if not decisions:
            raise CapabilityError(f"space {self.name!r} must implement mutate()")
        child = dict(arch)
        d = decisions[int(rng.integers(len(decisions)))]
        others = [c for c in d.choices if c != arch[d.name]]
        child[d.name] = others[int(rng.integers(len(others)))]
        return child

    # -- networks ----------------------------------------------------------------------------
    def build(self, arch: Arch, task: Task | None = None) -> nn.Module:
        raise CapabilityError(f"space {self.name!r} must implement build()")

    def graph(self, arch: Arch) -> nx.DiGraph:
        raise CapabilityError(f"space {self.name!r} does not offer 'graph'")

    def neighbors(self, arch: Arch, rng: np.random.Generator, limit: int = 8) -> list[dict[str, Any]]:
        """Up to ``limit`` distinct architectures one step from ``arch``: network morphisms in
        spaces that offer ``neighbors``, one-decision mutations in spaces built from decisions."""
        if not self.decisions():
            raise CapabilityError(f"space {self.name!r} does not offer 'neighbors'")
        seen, out = {arch_key(arch)}, []
        for _ in range(4 * limit):
            child = self.mutate(arch, rng)
            if arch_key(child) not in seen:
                seen.add(arch_key(child))
                out.append(child)
                if len(out) == limit:
                    break
        return out

    def transfer(self, parent_arch: Arch, parent_state: Mapping[str, Any], child_arch: Arch, child: nn.Module) -> int:
        """Load a trained parent's weights into ``child`` (built from ``child_arch``); returns how
        many tensors were inherited. Default: every tensor whose name and shape match (the rest
        keep their initialisation); spaces with network morphisms override it to map weights
        through the morphism so that the child computes the parent's function."""
        own = child.state_dict()
        taken = {k: v for k, v in parent_state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
        child.load_state_dict(taken, strict=False)
        return len(taken)

    def supernet(self, task: Task | None = None, **options: Any) -> Any:
        raise CapabilityError(f"space {self.name!r} does not offer 'supernet'")

    def single_path_supernet(self, task: Task | None = None, **options: Any) -> Any:
        raise CapabilityError(f"space {self.name!r} does not offer 'realloc'")

    def reallocation(self) -> Any:
        """The allocation and dilation decisions (a ``Reallocation``) of a ``realloc`` space."""
        raise CapabilityError(f"space {self.name!r} does not offer 'realloc'")

    def lut_entries(self, task: Task | None = None) -> dict[str, LutEntry]:
        """Every block configuration the space can produce for ``task``, keyed for a LUT."""
        raise CapabilityError(f"space {self.name!r} does not offer 'lut'")

    def lut_keys(self, arch: Arch, task: Task | None = None) -> list[str]:
        """The LUT keys whose latencies add up to ``arch``'s predicted latency (with repeats)."""
        raise CapabilityError(f"space {self.name!r} does not offer 'lut'")

    # -- presentation ------------------------------------------------------------------------
    def describe(self, arch: Arch) -> str:
        """Short human-readable text of an architecture (default: canonical JSON)."""
        return arch_key(arch)

    def parse(self, text: str) -> dict[str, Any]:
        """Inverse of :meth:`describe`; JSON is always accepted."""
        return self.validate(json.loads(text))


def choices_by_block(space: SearchSpace, values: Iterable[Any], block_of: Callable[[Any], str | None]) -> dict[str, dict[str, Any]]:
    """:meth:`SearchSpace.block_choices` of a space whose decisions name ops: for each value whose
    ``block_of(value)`` is a catalogue block, an arch in which every decision offering the value
    takes it (the first value per block)."""
    out: dict[str, dict[str, Any]] = {}
    for value in values:
        block = block_of(value)
        if block is not None and block not in out:
            out[block] = space.arch_with(value)
    return out
