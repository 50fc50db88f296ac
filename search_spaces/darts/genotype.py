"""DARTS genotypes and their arch-JSON form.

Index convention (DARTS, quark0/darts): in a cell, state 0 is H(l-2), state 1 is H(l-1) and
intermediate node ``j`` (``j = 2 .. steps+1``) is state ``j``; node ``j`` reads two states
``< j``. The TF NASNet / Auto-DeepLab code numbers the inputs the other way round (0 = H(l-1),
1 = H(l-2)); :func:`from_nasnet_tf` / :func:`to_nasnet_tf` convert explicitly.

Arch JSON (flat, one key per decision, so decision-based controllers can propose it)::

    {"normal_node2_in0": 0, "normal_node2_op0": "sep_conv_3x3",
     "normal_node2_in1": 1, "normal_node2_op1": "sep_conv_3x3", ...,
     "reduce_node5_in1": 1, "reduce_node5_op1": "max_pool_3x3"}

``in0/op0`` is the first (op, input) pair of the node in the genotype, ``in1/op1`` the second.
The concatenated output states are ``range(2 + steps - multiplier, steps + 2)`` (DARTS; nodes
2-5 by default); a cell with another output set (NASNet-A) carries ``"<cell>_concat": [...]``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from search_spaces.darts.ops import check_op

CELLS: tuple[str, ...] = ("normal", "reduce")
Pair = tuple[str, int]


@dataclass(frozen=True)
class Genotype:
    """A DARTS genotype: per cell type, ``2 * steps`` (op, input) pairs and the output states."""

    normal: tuple[Pair, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Pair, ...]
    reduce_concat: tuple[int, ...]

    def cell(self, kind: str) -> tuple[tuple[Pair, ...], tuple[int, ...]]:
        """``(pairs, concat)`` of ``"normal"`` or ``"reduce"``."""
        return getattr(self, kind), getattr(self, f"{kind}_concat")

    def __str__(self) -> str:
        """The quark0/darts ``Genotype(normal=[...], normal_concat=[...], ...)`` text."""
        parts = []
        for kind in CELLS:
            pairs, concat = self.cell(kind)
            parts.append(f"{kind}={[(op, i) for op, i in pairs]!r}")
            parts.append(f"{kind}_concat={list(concat)!r}")
        return f"Genotype({', '.join(parts)})"


def default_concat(steps: int, multiplier: int) -> tuple[int, ...]:
    """DARTS output states: the last ``multiplier`` intermediate nodes."""
    return tuple(range(2 + steps - multiplier, steps + 2))


def key(kind: str, node: int, slot: int, what: str) -> str:
    """Decision name, e.g. ``key("normal", 2, 0, "op") == "normal_node2_op0"``."""
    return f"{kind}_node{node}_{what}{slot}"


def make_cell(
    pairs: Iterable[Sequence[Any]], concat: Iterable[int] | None, multiplier: int
) -> tuple[tuple[Pair, ...], tuple[int, ...]]:
    """Check one cell (ops buildable, node j reads states < j, concat states exist)."""
    cell = tuple((str(op), int(i)) for op, i in pairs)
    if not cell or len(cell) % 2:
        raise ValueError(f"a cell needs 2 (op, input) pairs per node, got {len(cell)}")
    steps = len(cell) // 2
    for n, (op, i) in enumerate(cell):
        node = 2 + n // 2
        check_op(op)
        if not 0 <= i < node:
            raise ValueError(f"node {node} may read states 0..{node - 1}, not {i}")
    out = default_concat(steps, multiplier) if concat is None else tuple(int(c) for c in concat)
    if not out or list(out) != sorted(set(out)) or not all(0 <= c < steps + 2 for c in out):
        raise ValueError(f"concat must be increasing distinct states in 0..{steps + 1}, got {out}")
    return cell, out


def genotype_to_arch(g: Genotype, multiplier: int = 4) -> dict[str, Any]:
    """Flat arch JSON of ``g``; ``<cell>_concat`` only where it is not the DARTS default."""
    arch: dict[str, Any] = {}
    for kind in CELLS:
        pairs, concat = make_cell(*g.cell(kind), multiplier)
        for n, (op, i) in enumerate(pairs):
            arch[key(kind, 2 + n // 2, n % 2, "in")] = i
            arch[key(kind, 2 + n // 2, n % 2, "op")] = op
        if concat != default_concat(len(pairs) // 2, multiplier):
            arch[f"{kind}_concat"] = list(concat)
    return arch


def arch_to_genotype(arch: Mapping[str, Any], multiplier: int = 4) -> Genotype:
    """Inverse of :func:`genotype_to_arch`; raises ``ValueError`` naming the bad key."""
    cells: dict[str, Any] = {}
    seen: set[str] = set()
    for kind in CELLS:
        pairs: list[Pair] = []
        node = 2
        while key(kind, node, 0, "op") in arch:
            for slot in (0, 1):
                k_in, k_op = key(kind, node, slot, "in"), key(kind, node, slot, "op")
                if k_in not in arch or k_op not in arch:
                    raise ValueError(f"darts arch: missing {k_in if k_in not in arch else k_op}")
                i = arch[k_in]
                if isinstance(i, bool) or not isinstance(i, int):
                    raise ValueError(f"darts arch: {k_in}={i!r} must be an integer state index")
                if not isinstance(arch[k_op], str):
                    raise ValueError(f"darts arch: {k_op}={arch[k_op]!r} must be an op name")
                pairs.append((arch[k_op], i))
                seen.update((k_in, k_op))
            node += 1
        if not pairs:
            raise ValueError(f"darts arch: no {kind} cell (expected {key(kind, 2, 0, 'op')})")
        concat = arch.get(f"{kind}_concat")
        seen.add(f"{kind}_concat")
        try:
            cells[kind], cells[f"{kind}_concat"] = make_cell(pairs, concat, multiplier)
        except ValueError as e:
            raise ValueError(f"darts arch, {kind} cell: {e}") from None
    unknown = sorted(set(arch) - seen)
    if unknown:
        raise ValueError(f"darts arch: unknown keys {unknown}")
    return Genotype(**cells)


# -- the genotype text of quark0/darts ---------------------------------------------------------

_TEXT = re.compile(r"^\s*Genotype\((.*)\)\s*$", re.S)
_FIELD = re.compile(r"(normal_concat|reduce_concat|normal|reduce)\s*=\s*")


def parse_genotype(text: str) -> Genotype:
    """Read ``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], ...)``.

    ``range(2, 6)`` is accepted for a concat, as printed by the DARTS search logs.
    """
    m = _TEXT.match(text)
    if not m:
        raise ValueError(f"not a DARTS genotype text: {text[:60]!r}...")
    body = re.sub(r"range\((\d+),\s*(\d+)\)", lambda r: repr(list(range(int(r[1]), int(r[2])))), m[1])
    fields: dict[str, Any] = {}
    marks = list(_FIELD.finditer(body))
    for a, b in zip(marks, [*marks[1:], None], strict=True):
        value = body[a.end() : b.start() if b else len(body)].strip().rstrip(",")
        fields[a[1]] = ast.literal_eval(value)
    if set(fields) != {"normal", "normal_concat", "reduce", "reduce_concat"}:
        raise ValueError(f"a genotype needs normal, normal_concat, reduce, reduce_concat; got {sorted(fields)}")
    cells: dict[str, Any] = {}
    for kind in CELLS:
        cells[kind], cells[f"{kind}_concat"] = make_cell(fields[kind], fields[f"{kind}_concat"], 4)
    return Genotype(**cells)


# -- TF NASNet convention ------------------------------------------------------------------------

TF_OPS: dict[str, str] = {
    "separable_3x3_2": "sep_conv_3x3",
    "separable_5x5_2": "sep_conv_5x5",
    "separable_7x7_2": "sep_conv_7x7",
    "avg_pool_3x3": "avg_pool_3x3",
    "max_pool_3x3": "max_pool_3x3",
    "max_pool_5x5": "max_pool_5x5",
    "max_pool_7x7": "max_pool_7x7",
    "none": "skip_connect",  # TF 'none' is the identity (a strided 1x1 conv when it must reduce)
}


def _swap(i: int) -> int:
    """H(l-1) <-> H(l-2); block outputs keep their index (2 = first block, ...)."""
    return {0: 1, 1: 0}.get(i, i)


def from_nasnet_tf(
    operations: Sequence[str], hiddenstate_indices: Sequence[int], used_hiddenstates: Sequence[int]
) -> tuple[tuple[Pair, ...], tuple[int, ...]]:
    """One TF ``NasNetABaseCell`` (0 = H(l-1), 1 = H(l-2)) as DARTS ``(pairs, concat)``.

    The cell output is the concatenation of the states TF marks unused, in state order.
    """
    if len(operations) != len(hiddenstate_indices) or len(used_hiddenstates) != len(operations) // 2 + 2:
        raise ValueError("TF cell arrays have inconsistent lengths")
    try:
        pairs = tuple((TF_OPS[op], _swap(int(i))) for op, i in zip(operations, hiddenstate_indices, strict=True))
    except KeyError as e:
        raise ValueError(f"TF op {e.args[0]!r} has no DARTS name; known: {sorted(TF_OPS)}") from None
    concat = tuple(sorted(_swap(i) for i, used in enumerate(used_hiddenstates) if not used))
    return make_cell(pairs, concat, 4)


def to_nasnet_tf(
    pairs: Sequence[Pair], concat: Sequence[int]
) -> tuple[list[str], list[int], list[int]]:
    """Inverse of :func:`from_nasnet_tf`: ``(operations, hiddenstate_indices, used_hiddenstates)``."""
    names = {v: k for k, v in TF_OPS.items()}
    try:
        operations = [names[op] for op, _ in pairs]
    except KeyError as e:
        raise ValueError(f"op {e.args[0]!r} has no TF NASNet name") from None
    indices = [_swap(i) for _, i in pairs]
    tf_concat = {_swap(c) for c in concat}
    used = [0 if s in tf_concat else 1 for s in range(len(pairs) // 2 + 2)]
    return operations, indices, used
