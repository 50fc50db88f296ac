"""Composite blocks of the 'conv' table: gated residual, dense block, convolutional LSTM.

Registered on import of :mod:`search_spaces.blocks.conv`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from search_spaces.blocks._conv_layers import avg_pool_2x, check_odd
from search_spaces.blocks.ops import ReLUConvBN
from search_spaces.blocks.registry import register_block
from search_spaces.layers import ConvNormAct, create_act, create_norm, same_padding

# ---------------------------------------------------------------------------------------------
# Gated residual block (ConvNet-AIG / SkipNet / BlockDrop)
# ---------------------------------------------------------------------------------------------


@register_block(
    "gated_residual",
    kind="conv",
    paper="Convolutional Networks with Adaptive Inference Graphs (ConvNet-AIG, Veit & Belongie "
    "2018); SkipNet; BlockDrop",
)
class GatedResidual(nn.Module):
    """Residual block whose residual branch is switched on/off per sample by a learned gate.

    ``y = shortcut(x) + g * F(x)`` with ``g`` in {0, 1}. As in ConvNet-AIG, the gate is
    computed from the block input: global average pool -> Linear(c_in, gate_hidden) -> BN ->
    ReLU -> Linear(gate_hidden, 2) giving (off, on) logits, whose second bias starts high so
    gates start open (reference-code initialisation). Training: a hard straight-through
    Gumbel-softmax sample with temperature ``tau`` (``last_gate`` keeps the batch's gates for
    a target-rate loss). Eval: deterministic ``on`` iff logit_on > logit_off. ``F`` is two
    3x3 ReLU-Conv-BN units (stride on the first). The shortcut is the identity at stride 1 with
    ``c_in == c_out`` (then gate 0 gives exactly the identity) and a 1x1 conv + BN otherwise.
    Deviations: no ReLU after the addition (ConvNet-AIG has one; dropping it makes a closed
    gate an exact identity, as in pre-activation ResNets); SkipNet's recurrent gate and
    BlockDrop's policy network are alternative gate producers not built here. ``act`` / ``norm``
    name every activation / normalisation, the gate's included (create_act / create_norm).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        gate_hidden: int = 16,
        tau: float = 1.0,
        act: str = "relu",
        norm: str = "bn",
    ) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            ReLUConvBN(c_in, c_out, 3, stride, dilation, act=act, norm=norm),
            ReLUConvBN(c_out, c_out, 3, 1, dilation, act=act, norm=norm),
        )
        self.shortcut: nn.Module = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else ConvNormAct(c_in, c_out, 1, stride, norm=norm, act=None)
        )
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(c_in, gate_hidden),
            create_norm(norm, gate_hidden, dims=1),
            create_act(act),
            nn.Linear(gate_hidden, 2),
        )
        with torch.no_grad():
            self.gate[-1].bias.copy_(torch.tensor([0.1, 2.0]))
        self.tau = tau
        self.last_gate: torch.Tensor | None = None

    def gate_values(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample gate in {0, 1}: Gumbel straight-through sample in training, argmax in eval."""
        logits = self.gate(x)
        if self.training:
            gate = F.gumbel_softmax(logits, tau=self.tau, hard=True)[:, 1]
            self.last_gate = gate
            return gate
        return (logits[:, 1] > logits[:, 0]).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.gate_values(x).view(-1, 1, 1, 1)
        return self.shortcut(x) + gate * self.residual(x)


# ---------------------------------------------------------------------------------------------
# Dense block (DenseNet / FDNet / T3D)
# ---------------------------------------------------------------------------------------------


def dense_layer(
    c_in: int, growth_rate: int, bottleneck: int, dilation: int, act: str = "relu", norm: str = "bn"
) -> nn.Sequential:
    """DenseNet(-BC) layer: [BN-ReLU-Conv1x1(bottleneck*g)] -> BN-ReLU-Conv3x3(g) (pre-activation)."""
    layers: list[nn.Module] = []
    c = c_in
    if bottleneck:
        c = bottleneck * growth_rate
        layers += [create_norm(norm, c_in), create_act(act), nn.Conv2d(c_in, c, 1, bias=False)]
    layers += [
        create_norm(norm, c),
        create_act(act),
        nn.Conv2d(
            c, growth_rate, 3, padding=same_padding(3, dilation), dilation=dilation, bias=False
        ),
    ]
    return nn.Sequential(*layers)


@register_block(
    "dense_block",
    kind="conv",
    paper="DenseNet (Huang et al. 2017) as used by Fully Dense Networks (FDNet, 2019) and T3D",
)
class DenseBlock(nn.Module):
    """Densely connected block: each of L layers sees the input and all earlier outputs.

    Layer l maps ``c_in + l*g`` channels to ``g = growth_rate`` (DenseNet-BC layer with a
    ``bottleneck * g`` 1x1 bottleneck; ``bottleneck=0`` gives the plain BN-ReLU-Conv3x3
    layer). ``features(x)`` returns the concatenation, ``c_in + L*g`` channels. The block's
    ``c_out`` comes from a DenseNet transition (BN-ReLU-Conv1x1 to ``c_out``; 2x2 average
    pooling when ``stride=2``). With ``transition=False`` the output is the concatenation
    itself, so ``c_out`` must equal ``c_in + L*g``. Deviations: 2D (T3D's blocks are 3D; apply
    per frame or use the video blocks); FDNet's cross-block full-dense connections belong to the
    network, not this block. ``act`` / ``norm`` name every activation / normalisation (DenseNet's
    pre-activation order norm -> act -> conv is kept, so the layers are not ConvNormAct units).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        num_layers: int = 4,
        growth_rate: int = 12,
        bottleneck: int = 4,
        transition: bool = True,
        act: str = "relu",
        norm: str = "bn",
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"dense_block supports stride 1 or 2, got {stride}")
        self.layers = nn.ModuleList(
            dense_layer(c_in + i * growth_rate, growth_rate, bottleneck, dilation, act, norm)
            for i in range(num_layers)
        )
        self.feature_channels = c_in + num_layers * growth_rate
        if not transition and c_out != self.feature_channels:
            raise ValueError(
                "without a transition c_out must be c_in + L*g = "
                f"{self.feature_channels}, got {c_out}"
            )
        self.transition = (
            nn.Sequential(
                create_norm(norm, self.feature_channels),
                create_act(act),
                nn.Conv2d(self.feature_channels, c_out, 1, bias=False),
            )
            if transition
            else None
        )
        self.stride = stride

    def features(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, dim=1)))
        return torch.cat(feats, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.features(x)
        if self.transition is not None:
            y = self.transition(y)
        return avg_pool_2x(y) if self.stride == 2 else y


# ---------------------------------------------------------------------------------------------
# Convolutional LSTM
# ---------------------------------------------------------------------------------------------

State = tuple[torch.Tensor, torch.Tensor]


class ConvLSTMCell(nn.Module):
    """One ConvLSTM cell (Shi et al. 2015): LSTM gates from convolutions of x_t and h_{t-1}.

    ``[i, f, o, g] = conv_x(x_t) + conv_h(h_{t-1})``; ``c_t = sig(f) c + sig(i) tanh(g)``,
    ``h_t = sig(o) tanh(c_t)``. The stride (if any) is on ``conv_x``; the state lives at the
    strided resolution. The forget-gate bias starts at 1.
    """

    def __init__(
        self, c_in: int, hidden: int, kernel_size: int, stride: int, dilation: int
    ) -> None:
        super().__init__()
        pad = same_padding(check_odd(kernel_size), dilation)
        self.hidden = hidden
        self.conv_x = nn.Conv2d(
            c_in, 4 * hidden, kernel_size, stride=stride, padding=pad, dilation=dilation
        )
        self.conv_h = nn.Conv2d(
            hidden, 4 * hidden, kernel_size, padding=pad, dilation=dilation, bias=False
        )
        with torch.no_grad():
            self.conv_x.bias[hidden : 2 * hidden].fill_(1.0)

    def update(self, gates_x: torch.Tensor, state: State | None) -> State:
        """One step from the precomputed input term ``conv_x(x_t)``; ``state=None`` is all zeros."""
        if state is None:
            gates, c = gates_x, torch.zeros_like(gates_x[:, : self.hidden])
        else:
            gates, c = gates_x + self.conv_h(state[0]), state[1]
        i, f, o, g = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def forward(self, x_t: torch.Tensor, state: State | None = None) -> State:
        return self.update(self.conv_x(x_t), state)


@register_block(
    "conv_lstm",
    kind="conv",
    paper="Convolutional LSTM (Shi et al. 2015) as used by Disentangled Image Matting "
    "(AdaMatting) and TACNet (Bi-ConvLSTM)",
    video=True,
)
class ConvLSTM(nn.Module):
    """Convolutional LSTM over time, optionally bidirectional: ``[N,C,T,H,W] -> [N,c_out,T,H',W']``.

    A video-style block: a :class:`ConvLSTMCell` runs over the T frames from zero state and the
    hidden states of all steps form the output. ``bidirectional=True`` (TACNet's Bi-ConvLSTM)
    adds a second cell running backwards in time and concatenates the two hidden sequences
    (``c_out / 2`` channels each, so ``c_out`` must be even). The input convolutions of all
    frames are computed in one batched call. For step-wise use (AdaMatting's propagation over
    iterations) call ``block.cells[0](x_t, state) -> (h, c)``. Deviation: no peephole
    connections (Shi et al.'s Hadamard peepholes tie the weights to one spatial size).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int = 1,
        dilation: int = 1,
        kernel_size: int = 3,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        if bidirectional and c_out % 2:
            raise ValueError(f"a bidirectional conv_lstm needs an even c_out, got {c_out}")
        hidden = c_out // 2 if bidirectional else c_out
        self.cells = nn.ModuleList(
            ConvLSTMCell(c_in, hidden, kernel_size, stride, dilation)
            for _ in range(2 if bidirectional else 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(n * t, c, h, w)
        outputs = []
        for direction, cell in enumerate(self.cells):
            gates_x = cell.conv_x(frames)
            gates_x = gates_x.view(n, t, *gates_x.shape[1:])
            hidden: dict[int, torch.Tensor] = {}
            state: State | None = None
            for step in range(t) if direction == 0 else reversed(range(t)):
                state = cell.update(gates_x[:, step], state)
                hidden[step] = state[0]
            outputs.append(torch.stack([hidden[step] for step in range(t)], dim=2))
        return torch.cat(outputs, dim=1) if len(outputs) > 1 else outputs[0]
