"""Start architectures of the ``morph`` space (Auto-Keras's seed networks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from search_spaces.morph.arch import Layer


class _Builder:
    """Appends layers with consecutive ids; each call returns the new layer's id."""

    def __init__(self) -> None:
        self.layers: list[Layer] = [{"id": 0, "type": "input"}]

    def __call__(self, kind: str, *inputs: int, **attrs: Any) -> int:
        lid = len(self.layers)
        self.layers.append({"id": lid, "type": kind, **attrs, "inputs": list(inputs)})
        return lid

    def conv_bn_relu(self, x: int, filters: int, kernel: int = 3) -> int:
        return self("relu", self("bn", self("conv", x, filters=filters, kernel=kernel)))

    def done(self, x: int) -> dict[str, Any]:
        self("head", x)
        return {"layers": self.layers}


def cnn(width: int = 64, depth: int = 3) -> dict[str, Any]:
    """Auto-Keras's default CNN: ``depth`` x [conv3x3(width), bn, relu, maxpool2], then the head."""
    b = _Builder()
    x = 0
    for _ in range(depth):
        x = b("pool", b.conv_bn_relu(x, width), kernel=2)
    return b.done(x)


def resnet(width: int = 64, depth: int = 3) -> dict[str, Any]:
    """A small ResNet: a conv3x3(width) stem, then ``depth`` stages of one residual block
    [conv3x3, bn, relu, conv3x3, bn] + the block input (``add``, 1x1 projection), relu; stage
    ``s`` has ``width * 2**s`` filters and every stage but the last ends with a maxpool2."""
    b = _Builder()
    x = b.conv_bn_relu(0, width)
    for s in range(depth):
        c = width * 2**s
        main = b("bn", b("conv", b.conv_bn_relu(x, c), filters=c, kernel=3))
        x = b("relu", b("add", main, x))
        if s < depth - 1:
            x = b("pool", x, kernel=2)
    return b.done(x)


STARTS: dict[str, Callable[[int, int], dict[str, Any]]] = {"cnn": cnn, "resnet": resnet}
