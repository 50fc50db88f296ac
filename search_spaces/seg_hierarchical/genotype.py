"""Discrete Auto-DeepLab architectures: cell genotype + network path, and their JSON form.

Conventions (fixed here, used everywhere in the package):

* **Ops** — :data:`OPS` is the column order of α (NoamRosenberg ``PRIMITIVES`` order with
  Auto-DeepLab names); a discrete cell uses :data:`CELL_OPS` (every op but ``zero``).
  ``atrous_conv_*`` are rate-2 depthwise-separable atrous convs (DARTS ``dil_conv``).
* **Cell inputs** (DARTS / NoamRosenberg convention): ``0`` = H(l-2), ``1`` = H(l-1),
  ``k + 1`` = block k (1-based). The official TF ``hnasnet`` numbers ``0`` = H(l-1) and
  ``1`` = H(l-2); :func:`from_tf_hnasnet` converts explicitly.
* **Path** — ``path[l]`` is the level of layer ``l`` (0-based), stride ``4 * 2**level``; the
  first layer is at level 0 or 1 and consecutive levels differ by at most one.

An architecture (the JSON mapping every controller sees) is a flat set of decisions so that
decision-based controllers (TPE, NSGA-II) can propose it: ``path_1`` (level of layer 1, 0/1),
``move_2 .. move_L`` (-1/0/+1, level change from the previous layer; a move that would leave
levels 0..3 is clamped, and :func:`canonical_arch` rewrites it to 0 so one network has one key),
``b{k}_inputs`` (``"i,j"`` with i < j <= k: the two distinct inputs of block k),
``b{k}_op1`` / ``b{k}_op2`` (the ops applied to input i and j). :func:`genotype_to_arch` and
:func:`arch_to_genotype` convert to and from the readable (cell, path) form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

OPS: tuple[str, ...] = (
    "zero",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "atrous_conv_3x3",
    "atrous_conv_5x5",
)
CELL_OPS: tuple[str, ...] = OPS[1:]
LEVELS = 4  # strides 4, 8, 16, 32
MOVES: tuple[int, ...] = (-1, 0, 1)

Block = tuple[tuple[str, int], tuple[str, int]]


@dataclass(frozen=True)
class Genotype:
    """Readable form: ``cell[k] = ((op, input), (op, input))`` with inputs ascending; ``path``."""

    cell: tuple[Block, ...]
    path: tuple[int, ...]


# -- edges of the cell DAG (α rows) --------------------------------------------------------------
def edge_offsets(blocks: int) -> list[int]:
    """Row of α where block k's (0-based) edges start; block k has k + 2 candidate inputs."""
    out, start = [], 0
    for k in range(blocks):
        out.append(start)
        start += k + 2
    return out


def num_edges(blocks: int) -> int:
    """2 + 3 + ... + (B + 1): 20 for B = 5."""
    return sum(k + 2 for k in range(blocks))


def edge_index(block: int, source: int, blocks: int) -> int:
    """α row of the edge from input ``source`` into (0-based) ``block``."""
    if not 0 <= source <= block + 1:
        raise ValueError(f"block {block + 1} has inputs 0..{block + 1}, not {source}")
    return edge_offsets(blocks)[block] + source


# -- path ---------------------------------------------------------------------------------------
def check_path(path: Sequence[int], layers: int | None = None) -> tuple[int, ...]:
    """Validate a level path (first level 0/1, levels 0..3, |Δ| <= 1); return it as a tuple."""
    path = tuple(int(p) for p in path)
    if layers is not None and len(path) != layers:
        raise ValueError(f"path has {len(path)} layers, the space has {layers}")
    if not path:
        raise ValueError("path is empty")
    if path[0] not in (0, 1):
        raise ValueError(f"the first layer must be at level 0 or 1 (stride 4 or 8), got {path[0]}")
    for l, (a, b) in enumerate(zip(path, path[1:]), start=1):
        if not 0 <= b < LEVELS or abs(b - a) > 1:
            raise ValueError(f"path level {b} at layer {l} is not within one level of {a} (levels 0..3)")
    return path


def levels_from_moves(first: int, moves: Iterable[int]) -> list[int]:
    """Levels from the first level and the per-layer moves, clamping at levels 0 and 3."""
    levels = [int(first)]
    for m in moves:
        levels.append(min(LEVELS - 1, max(0, levels[-1] + int(m))))
    return levels


# -- cell ---------------------------------------------------------------------------------------
def check_cell(cell: Sequence[Sequence[Sequence[Any]]], blocks: int | None = None) -> tuple[Block, ...]:
    """Validate a cell (ops in CELL_OPS, two distinct inputs < k + 2 per block k), inputs ascending."""
    if blocks is not None and len(cell) != blocks:
        raise ValueError(f"cell has {len(cell)} blocks, the space has {blocks}")
    out = []
    for k, block in enumerate(cell):
        if len(block) != 2:
            raise ValueError(f"block {k + 1} must have two (op, input) pairs, got {block!r}")
        pairs = []
        for pair in block:
            op, src = pair
            if op not in CELL_OPS:
                raise ValueError(f"block {k + 1}: op {op!r} is not one of {list(CELL_OPS)}")
            if isinstance(src, bool) or not isinstance(src, int) or not 0 <= src <= k + 1:
                raise ValueError(f"block {k + 1}: input {src!r} must be an int in 0..{k + 1}")
            pairs.append((str(op), int(src)))
        if pairs[0][1] == pairs[1][1]:
            raise ValueError(f"block {k + 1}: the two inputs must differ, got {pairs[0][1]} twice")
        pairs.sort(key=lambda p: p[1])
        out.append((pairs[0], pairs[1]))
    return tuple(out)


def input_pairs(block: int) -> tuple[str, ...]:
    """Choices of ``b{k}_inputs`` for 0-based ``block``: ``"i,j"`` with 0 <= i < j <= block + 1."""
    n = block + 2
    return tuple(f"{i},{j}" for i in range(n) for j in range(i + 1, n))


# -- arch <-> genotype ----------------------------------------------------------------------------
def decision_names(layers: int, blocks: int) -> list[str]:
    names = ["path_1"] + [f"move_{l}" for l in range(2, layers + 1)]
    for k in range(1, blocks + 1):
        names += [f"b{k}_inputs", f"b{k}_op1", f"b{k}_op2"]
    return names


def genotype_to_arch(cell: Sequence[Sequence[Sequence[Any]]], path: Sequence[int]) -> dict[str, Any]:
    """The decision form of a (cell, path) genotype (validated, canonical)."""
    cell_t, path_t = check_cell(cell), check_path(path)
    arch: dict[str, Any] = {"path_1": path_t[0]}
    for l in range(1, len(path_t)):
        arch[f"move_{l + 1}"] = path_t[l] - path_t[l - 1]
    for k, ((op1, i), (op2, j)) in enumerate(cell_t, start=1):
        arch[f"b{k}_inputs"] = f"{i},{j}"
        arch[f"b{k}_op1"] = op1
        arch[f"b{k}_op2"] = op2
    return arch


def arch_to_genotype(arch: Mapping[str, Any], layers: int, blocks: int) -> Genotype:
    """(cell, path) of a decision-form arch (moves clamped); raises ValueError naming the bad key."""
    missing = [n for n in decision_names(layers, blocks) if n not in arch]
    extra = [k for k in arch if k not in set(decision_names(layers, blocks))]
    if missing or extra:
        raise ValueError(f"seg-hierarchical: architecture keys do not match (missing {missing}, unknown {extra})")
    first = arch["path_1"]
    if first not in (0, 1) or isinstance(first, bool):
        raise ValueError(f"seg-hierarchical: path_1={first!r} is not one of [0, 1]")
    moves = []
    for l in range(2, layers + 1):
        m = arch[f"move_{l}"]
        if m not in MOVES or isinstance(m, bool):
            raise ValueError(f"seg-hierarchical: move_{l}={m!r} is not one of {list(MOVES)}")
        moves.append(m)
    cell = []
    for k in range(1, blocks + 1):
        pair = arch[f"b{k}_inputs"]
        if pair not in input_pairs(k - 1):
            raise ValueError(f"seg-hierarchical: b{k}_inputs={pair!r} is not one of {list(input_pairs(k - 1))}")
        i, j = (int(s) for s in pair.split(","))
        for name in (f"b{k}_op1", f"b{k}_op2"):
            if arch[name] not in CELL_OPS:
                raise ValueError(f"seg-hierarchical: {name}={arch[name]!r} is not one of {list(CELL_OPS)}")
        cell.append(((arch[f"b{k}_op1"], i), (arch[f"b{k}_op2"], j)))
    return Genotype(tuple(cell), tuple(levels_from_moves(first, moves)))


def canonical_arch(arch: Mapping[str, Any], layers: int, blocks: int) -> dict[str, Any]:
    """Validated decision form with clamped moves rewritten to 0, keys in decision order."""
    g = arch_to_genotype(arch, layers, blocks)
    out = genotype_to_arch(g.cell, g.path)
    return {n: out[n] for n in decision_names(layers, blocks)}


# -- text form ----------------------------------------------------------------------------------
def genotype_str(g: Genotype) -> str:
    """``path=0-0-1 cell=op~i+op~j|...`` (inputs in the DARTS convention, 0 = H(l-2))."""
    blocks = "|".join(f"{a}~{i}+{b}~{j}" for (a, i), (b, j) in g.cell)
    return f"path={'-'.join(str(p) for p in g.path)} cell={blocks}"


def parse_genotype_str(text: str) -> Genotype:
    """Inverse of :func:`genotype_str`; raises ValueError with the accepted form."""
    form = "path=0-0-1-... cell=op~i+op~j|op~i+op~j|..."
    try:
        path_part, cell_part = text.strip().split()
        if not (path_part.startswith("path=") and cell_part.startswith("cell=")):
            raise ValueError
        path = [int(p) for p in path_part[5:].split("-")]
        cell = []
        for block in cell_part[5:].split("|"):
            pairs = []
            for item in block.split("+"):
                op, src = item.split("~")
                pairs.append((op, int(src)))
            cell.append(tuple(pairs))
    except ValueError:
        raise ValueError(f"not a seg-hierarchical genotype string: {text!r} (expected {form})") from None
    return Genotype(check_cell(cell), check_path(path))


# -- the official TF hnasnet encoding --------------------------------------------------------------
TF_OPS: dict[str, str] = {
    "separable_3x3_2": "sep_conv_3x3",
    "separable_5x5_2": "sep_conv_5x5",
    "atrous_3x3": "atrous_conv_3x3",
    "atrous_5x5": "atrous_conv_5x5",
    "avg_pool_3x3": "avg_pool_3x3",
    "max_pool_3x3": "max_pool_3x3",
    "skip_connect": "skip_connect",
}


def from_tf_hnasnet(
    operations: Sequence[str], hiddenstate_indices: Sequence[int], backbone: Sequence[int]
) -> Genotype:
    """Convert ``nas_network.hnasnet``'s cell lists and backbone to this package's convention.

    TF hidden states are ``[H(l-1) after 1x1, H(l-2), B1, B2, ...]``: TF index 0 -> our 1,
    TF 1 -> our 0, TF k >= 2 -> k (blocks keep their numbers).
    """
    if len(operations) != len(hiddenstate_indices) or len(operations) % 2:
        raise ValueError("operations and hiddenstate_indices must have the same even length")
    swap = {0: 1, 1: 0}
    ours = [swap.get(int(i), int(i)) for i in hiddenstate_indices]
    cell = [
        tuple((TF_OPS[operations[2 * k + s]], ours[2 * k + s]) for s in (0, 1)) for k in range(len(operations) // 2)
    ]
    return Genotype(check_cell(cell), check_path(backbone))


# nas_network.py hnasnet(): the Cityscapes search result (docs/algorithms.md §9).
TF_HNASNET_OPERATIONS = (
    "atrous_5x5", "separable_3x3_2", "separable_3x3_2", "atrous_3x3", "separable_3x3_2",
    "separable_3x3_2", "separable_5x5_2", "separable_5x5_2", "separable_5x5_2", "atrous_5x5",
)
TF_HNASNET_HIDDENSTATE_INDICES = (1, 0, 1, 0, 3, 1, 4, 2, 3, 5)
TF_HNASNET_BACKBONE = (0, 0, 0, 1, 2, 1, 2, 2, 3, 3, 2, 1)

AUTODEEPLAB_CITYSCAPES: Genotype = from_tf_hnasnet(
    TF_HNASNET_OPERATIONS, TF_HNASNET_HIDDENSTATE_INDICES, TF_HNASNET_BACKBONE
)
