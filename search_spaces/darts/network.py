"""The DARTS retrain network for one genotype (quark0/darts ``model.NetworkCIFAR``).

Stem conv 3x3 to ``3C`` + BN; ``layers`` cells with reductions (stride 2, ``C`` doubled) at
``layers//3`` and ``2*layers//3``; global average pooling; linear classifier. A cell
preprocesses H(l-2) (FactorizedReduce after a reduction cell, else 1x1 ReLU-Conv-BN) and H(l-1)
to ``C`` channels, runs two ops per node (stride 2 on the cell inputs in a reduction cell) and
concatenates its output states (a node adds its two op outputs, or with NASNet's ``concat``
combine concatenates them and maps them back to ``C`` with a 1x1 conv). A reduction cell that outputs one of its inputs (TF NASNet
does so) factorised-reduces it first, as TF ``_combine_unused_states`` does.

``drop_path_prob`` (a plain attribute the trainer may ramp, DARTS: ``p · epoch / epochs``)
zeroes whole op outputs per sample with that probability and rescales the kept ones, in
training only and never on identities (DARTS ``drop_path``). With ``auxiliary=True`` an
auxiliary classifier (DARTS ``AuxiliaryHeadCIFAR``: needs >= 8x8 features there) reads the cell
at ``2*layers//3``; then ``forward`` returns ``(logits, aux_logits)`` in training mode and
``logits`` in eval mode (the 0.4 loss weight is the trainer's business).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from search_spaces.blocks.ops import FactorizedReduce, ReLUConvBN
from search_spaces.darts.genotype import Genotype, Pair
from search_spaces.darts.ops import make_op


def drop_path(x: torch.Tensor, prob: float) -> torch.Tensor:
    """Zero each sample's ``x`` with probability ``prob``, scale the rest by ``1/(1-prob)``."""
    keep = 1.0 - prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class Cell(nn.Module):
    """One discrete cell of a genotype (see the module docstring)."""

    def __init__(
        self,
        pairs: Sequence[Pair],
        concat: Sequence[int],
        c_pp: int,
        c_p: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
        combine: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0: nn.Module = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1)
        self.preprocess1 = ReLUConvBN(c_p, c, 1)
        self.indices = [i for _, i in pairs]
        self.ops = nn.ModuleList(make_op(op, c, 2 if reduction and i < 2 else 1) for op, i in pairs)
        self.droppable = [not isinstance(op, nn.Identity) for op in self.ops]
        self.concat = list(concat)
        self.reduce_inputs = nn.ModuleDict(
            {str(i): FactorizedReduce(c, c) for i in self.concat if reduction and i < 2}
        )
        self.multiplier = len(self.concat)
        # NASNet's combine: "add" (DARTS, NASNet-A) or "concat", then a 1x1 back to c channels.
        self.combine = list(combine) if combine is not None else ["add"] * (len(pairs) // 2)
        self.fuse = nn.ModuleDict({str(n): ReLUConvBN(2 * c, c, 1) for n, how in enumerate(self.combine)
                                   if how == "concat"})

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for n in range(len(self.ops) // 2):
            ys = []
            for k in (2 * n, 2 * n + 1):
                y = self.ops[k](states[self.indices[k]])
                if self.training and drop_prob > 0 and self.droppable[k]:
                    y = drop_path(y, drop_prob)
                ys.append(y)
            states.append(self.fuse[str(n)](torch.cat(ys, dim=1)) if str(n) in self.fuse else ys[0] + ys[1])
        outs = [self.reduce_inputs[str(i)](states[i]) if str(i) in self.reduce_inputs else states[i] for i in self.concat]
        return torch.cat(outs, dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS ``AuxiliaryHeadCIFAR``: 8x8 features -> avg pool 5/3 -> 1x1 (128) -> 2x2 (768) -> FC."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class DartsNetwork(nn.Module):
    """The retrain network of a genotype: ``[N, C_in, H, W] -> logits [N, num_classes]``."""

    def __init__(
        self,
        genotype: Genotype,
        C: int = 36,  # noqa: N803 - the paper's name
        layers: int = 20,
        num_classes: int = 10,
        in_channels: int = 3,
        auxiliary: bool = False,
        drop_path_prob: float = 0.0,
        stem_multiplier: int = 3,
        combine: dict[str, Sequence[str]] | None = None,
    ) -> None:
        super().__init__()
        self.drop_path_prob = float(drop_path_prob)
        c_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_pp, c_p, c = c_curr, c_curr, C
        self.cells = nn.ModuleList()
        self.aux_index = 2 * layers // 3
        aux_channels = c_p
        reduction_prev = False
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            c = c * 2 if reduction else c
            kind = "reduce" if reduction else "normal"
            pairs, concat = genotype.cell(kind)
            cell = Cell(pairs, concat, c_pp, c_p, c, reduction, reduction_prev, (combine or {}).get(kind))
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.multiplier * c
            if i == self.aux_index:
                aux_channels = c_p
        self.auxiliary_head = AuxiliaryHead(aux_channels, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def cell_drop_prob(self, index: int) -> float:
        """The drop-path probability of cell ``index`` (DARTS: one for every cell)."""
        return self.drop_path_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        aux: torch.Tensor | None = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.cell_drop_prob(i))
            if i == self.aux_index and self.auxiliary_head is not None and self.training:
                aux = self.auxiliary_head(s1)
        logits = self.classifier(torch.flatten(self.global_pooling(s1), 1))
        return logits if aux is None else (logits, aux)
