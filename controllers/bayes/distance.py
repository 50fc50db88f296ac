"""Auto-Keras's edit distance between architectures (docs/algorithms.md §3).

An architecture is compared through its :class:`Descriptor`: the layers of its main chain (the
longest path) in order, and its skip connections ``(u, v, kind)`` indexed on that chain, ``kind``
``add`` or ``concat``. The distance is ``D_layers + lam * D_skip``:

* ``D_layers``: edit distance by dynamic programming, insert / delete cost 1, substitution cost
  :func:`layer_distance` (1 for different layer types; for convolutions -- types ending in
  ``conv`` -- the mean over filters, kernel and stride of ``|a - b| / max(a, b)``; for pooling --
  types ending in ``pool`` -- over padding, kernel and stride; 0 for other layers of the same type);
* ``D_skip``: a minimum-cost matching of the two skip lists (Hungarian,
  ``scipy.optimize.linear_sum_assignment``) with :func:`skip_distance` (1 for different kinds,
  else ``(|u_a - u_b| + |l_a - l_b|) / (max u + max l)``, ``l = v - u``), plus the difference of
  the skip counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

CONV_FIELDS = ("filters", "kernel", "stride")
POOL_FIELDS = ("padding", "kernel", "stride")


@dataclass(frozen=True)
class Layer:
    """One main-chain layer: a type (``conv``, ``pool``, ``bn``, ``relu``, ``dense`` ...) and its
    numeric attributes."""

    type: str
    attrs: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Skip:
    """A skip connection from main-chain position ``u`` to ``v > u`` of kind ``add``/``concat``."""

    u: int
    v: int
    kind: str


@dataclass(frozen=True)
class Descriptor:
    layers: tuple[Layer, ...]
    skips: tuple[Skip, ...] = ()


def _relative(a: float, b: float) -> float:
    return 0.0 if a == b else abs(a - b) / max(abs(a), abs(b))


def _fields(kind: str) -> tuple[str, ...]:
    """The attributes compared for a layer type: conv families (``conv``, ``sep_conv`` ...) and
    pooling (``pool``, ``max_pool`` ...) have theirs, other layers none."""
    return CONV_FIELDS if kind.endswith("conv") else POOL_FIELDS if kind.endswith("pool") else ()


def layer_distance(a: Layer, b: Layer) -> float:
    """Substitution cost of two layers, in [0, 1]."""
    if a.type != b.type:
        return 1.0
    fields = _fields(a.type)
    if not fields:
        return 0.0
    return float(np.mean([_relative(float(a.attrs.get(f, 0)), float(b.attrs.get(f, 0))) for f in fields]))


def _encode(layers: Sequence[Layer]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Types, compared attributes (3 per layer) and whether a layer has any, as arrays."""
    types = np.array([x.type for x in layers], dtype=object)
    fields = [_fields(x.type) for x in layers]
    values = np.array([[float(x.attrs.get(f, 0)) for f in fs] if fs else [0.0] * 3 for x, fs in zip(layers, fields)],
                      dtype=float).reshape(len(layers), 3)
    return types, values, np.array([bool(fs) for fs in fields], dtype=bool)


def substitution_matrix(a: Sequence[Layer], b: Sequence[Layer]) -> np.ndarray:
    """``layer_distance(a[i], b[j])`` for every pair, computed at once."""
    ta, va, fa = _encode(a)
    tb, vb, _ = _encode(b)
    same = ta[:, None] == tb[None, :]
    x, y = va[:, None, :], vb[None, :, :]
    top = np.maximum(np.abs(x), np.abs(y))
    rel = np.where(x == y, 0.0, np.abs(x - y) / np.where(top == 0, 1.0, top)).mean(-1)
    return np.where(same, np.where(fa[:, None], rel, 0.0), 1.0)


def layers_distance(a: Sequence[Layer], b: Sequence[Layer]) -> float:
    """Edit distance of two layer sequences (insert/delete 1, substitute ``layer_distance``),
    one table row at a time: with ``c[j] = min(up + 1, diagonal + substitution)`` the row is
    ``min_{k <= j} (c[k] + j - k)``, a running minimum."""
    n, m = len(a), len(b)
    if n == 0 or m == 0:
        return float(n + m)
    sub = substitution_matrix(a, b)
    steps = np.arange(m + 1, dtype=float)
    row = steps.copy()
    for i in range(1, n + 1):
        c = np.empty(m + 1)
        c[0] = i
        c[1:] = np.minimum(row[1:] + 1, row[:-1] + sub[i - 1])
        row = np.minimum.accumulate(c - steps) + steps
    return float(row[m])


def skip_distance(a: Skip, b: Skip, max_u: float, max_len: float) -> float:
    if a.kind != b.kind:
        return 1.0
    scale = max_u + max_len
    if scale == 0:
        return 0.0
    return (abs(a.u - b.u) + abs((a.v - a.u) - (b.v - b.u))) / scale


def skips_distance(a: Sequence[Skip], b: Sequence[Skip]) -> float:
    """Minimum-cost matching of two skip lists plus the difference of their counts."""
    if not a or not b:
        return float(abs(len(a) - len(b)))
    both = [*a, *b]
    max_u = max(s.u for s in both)
    max_len = max(s.v - s.u for s in both)
    cost = np.array([[skip_distance(x, y, max_u, max_len) for y in b] for x in a])
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].sum()) + abs(len(a) - len(b))


def distance(a: Descriptor, b: Descriptor, lam: float = 1.0) -> float:
    """Auto-Keras's architecture distance ``D_layers + lam * D_skip``."""
    return layers_distance(a.layers, b.layers) + lam * skips_distance(a.skips, b.skips)


def distance_matrix(descriptors: Sequence[Descriptor], lam: float = 1.0, *, others: Sequence[Descriptor] | None = None
                    ) -> np.ndarray:
    """Pairwise distances (symmetric when ``others`` is None)."""
    if others is not None:
        return np.array([[distance(x, y, lam) for y in others] for x in descriptors])
    n = len(descriptors)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = distance(descriptors[i], descriptors[j], lam)
    return out


def describe(layers: Sequence[tuple[str, Mapping[str, Any]]], skips: Sequence[tuple[int, int, str]] = ()) -> Descriptor:
    """Shorthand: ``describe([("conv", {"filters": 64, "kernel": 3, "stride": 1}), ("relu", {})], [(0, 2, "add")])``."""
    return Descriptor(tuple(Layer(t, dict(attrs)) for t, attrs in layers), tuple(Skip(u, v, k) for u, v, k in skips))


class DistanceCache:
    """:func:`distance` for many pairs at once, each computed once: layer sequences and skip lists
    get ids, and the two parts of the distance are kept per pair of ids (architectures of one
    space share few distinct chains and skip lists, so most pairs are looked up, not computed)."""

    def __init__(self, lam: float = 1.0) -> None:
        self.lam = lam
        self._ids: list[dict[Any, int]] = [{}, {}]
        self._items: list[list[Any]] = [[], []]
        self._tables = [np.full((0, 0), np.nan), np.full((0, 0), np.nan)]

    def _id(self, part: int, item: Any, key: Any) -> int:
        ids = self._ids[part]
        if key not in ids:
            ids[key] = len(ids)
            self._items[part].append(item)
        return ids[key]

    def ids(self, d: Descriptor) -> tuple[int, int]:
        layers_key = tuple((x.type, tuple(sorted(x.attrs.items()))) for x in d.layers)
        return self._id(0, d.layers, layers_key), self._id(1, d.skips, d.skips)

    def _lookup(self, part: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        n = len(self._items[part])
        table = self._tables[part]
        if table.shape[0] < n:  # grow (doubling) with unknown entries
            grown = np.full((max(n, 2 * table.shape[0]),) * 2, np.nan)
            grown[: table.shape[0], : table.shape[0]] = table
            table = self._tables[part] = grown
        block = table[np.ix_(rows, cols)]
        missing = np.isnan(block)
        if missing.any():
            f = layers_distance if part == 0 else skips_distance
            items = self._items[part]
            for i, j in {(int(rows[r]), int(cols[c])) for r, c in zip(*np.nonzero(missing), strict=True)}:
                table[i, j] = table[j, i] = f(items[i], items[j])
            block = table[np.ix_(rows, cols)]
        return block

    def matrix(self, a: Sequence[Descriptor], b: Sequence[Descriptor]) -> np.ndarray:
        """``distance(a[i], b[j], lam)`` for every pair, shape ``(len(a), len(b))``."""
        ia = np.array([self.ids(x) for x in a], dtype=int).reshape(-1, 2)
        ib = np.array([self.ids(x) for x in b], dtype=int).reshape(-1, 2)
        return self._lookup(0, ia[:, 0], ib[:, 0]) + self.lam * self._lookup(1, ia[:, 1], ib[:, 1])
