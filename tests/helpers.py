"""Shared test helpers."""

from __future__ import annotations

from automl.cli import main


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``automl ARGS`` in-process; returns (exit code, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err
