"""benchmarks/gpu_checks.sh: the prepared GPU run parses, and refuses what it does not take."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_checks.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def test_the_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_an_unknown_argument_is_one_usage_line_and_exit_2() -> None:
    out = subprocess.run(["bash", str(SCRIPT), "--gpu"], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip() == "usage: bash benchmarks/gpu_checks.sh [--fetch]"
