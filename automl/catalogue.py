"""The block catalogue as rows for ``automl blocks`` and the generated ``docs/blocks.md``.

    python -m automl.catalogue --write docs/blocks.md     # regenerate the docs page
"""

from __future__ import annotations

import argparse
import inspect
from dataclasses import dataclass
from pathlib import Path

from search_spaces.blocks import all_blocks, get_block
from search_spaces.blocks.registry import BlockSpec

REFERENCE_CHANNELS = 64


@dataclass(frozen=True)
class Row:
    name: str
    kind: str
    paper: str
    summary: str
    params: int
    onnx: str
    signature: str


def count_params(spec: BlockSpec, channels: int = REFERENCE_CHANNELS) -> int:
    block = spec.create(channels, channels)
    return sum(p.numel() for p in block.parameters())


def onnx_status(spec: BlockSpec) -> str:
    if spec.video:
        return "n/a (video)"
    return "yes" if spec.onnx else f"no: {spec.onnx_reason}"


def rows() -> list[Row]:
    return [
        Row(s.name, s.kind, s.paper, s.summary, count_params(s), onnx_status(s), s.signature)
        for s in sorted(all_blocks(), key=lambda s: (s.kind, s.name))
    ]


def options_text(spec: BlockSpec) -> list[tuple[str, str]]:
    return [(k, repr(v)) for k, v in spec.options.items()]


def render_markdown() -> str:
    """The whole docs/blocks.md page, generated from the registry."""
    catalogue = rows()
    lines = [
        "# Block catalogue",
        "",
        "Generated from the registry by `python -m automl.catalogue --write docs/blocks.md`;",
        "a test fails when this page is out of date. `automl blocks` prints the same table and",
        "`automl blocks NAME` one block's options.",
        "",
        f"{len(catalogue)} blocks. Params are for a {REFERENCE_CHANNELS}->{REFERENCE_CHANNELS} instance with default options.",
        "2D blocks take `Block(c_in, c_out, stride=1, dilation=1, **options)` and map",
        "`[N,c_in,H,W]` to `[N,c_out,ceil(H/stride),ceil(W/stride)]` unless their signature says",
        "otherwise; video blocks take `[N,C,T,H,W]`.",
        "",
        "| name | kind | paper | what | params | ONNX | signature |",
        "|---|---|---|---|---:|---|---|",
    ]
    for r in catalogue:
        lines.append(
            f"| `{r.name}` | {r.kind} | {r.paper} | {r.summary} | {r.params:,} | {r.onnx} | `{r.signature}` |"
        )
    lines += ["", "## Options", ""]
    for spec in sorted(all_blocks(), key=lambda s: s.name):
        opts = options_text(spec)
        text = ", ".join(f"`{k}={v}`" for k, v in opts) if opts else "none"
        lines.append(f"- `{spec.name}`: {text}")
    return "\n".join(lines) + "\n"


def describe_block(name: str) -> str:
    """Plain-text description of one block for ``automl blocks NAME``."""
    spec = get_block(name)
    doc = inspect.getdoc(spec.cls) or ""
    lines = [
        f"{spec.name}  ({spec.kind})  {spec.cls.__module__}.{spec.cls.__qualname__}",
        f"paper:     {spec.paper}",
        f"signature: {spec.signature}",
        f"params:    {count_params(spec):,} at {REFERENCE_CHANNELS}->{REFERENCE_CHANNELS}",
        f"ONNX:      {onnx_status(spec)}",
        f"torch.export: {'yes' if spec.torch_export else 'no: ' + spec.export_reason}",
        "options:",
    ]
    opts = options_text(spec)
    lines += [f"  {k} = {v}" for k, v in opts] or ["  (none)"]
    lines += ["", doc]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render the block catalogue as Markdown")
    parser.add_argument("--write", type=Path, help="write to this file instead of stdout")
    args = parser.parse_args(argv)
    text = render_markdown()
    if args.write:
        args.write.write_text(text)
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
