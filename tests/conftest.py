"""Shared test set-up: one torch thread (2-core CI machine), the shared benchmark folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_BENCHMARKS = REPO.parent / "shared" / "benchmarks"


def pytest_configure(config: pytest.Config) -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass


@pytest.fixture(scope="session")
def shared_benchmarks() -> Path:
    """../shared/benchmarks; skipped outside the repo's home, required under CI."""
    if not SHARED_BENCHMARKS.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {SHARED_BENCHMARKS} is missing")
        pytest.skip(f"{SHARED_BENCHMARKS} not found (tests that read NB201 tables need it)")
    return SHARED_BENCHMARKS
