"""benchmarks/nb201.py: its interface, JSON format, and the numbers the protocol must reach."""

from __future__ import annotations

import json

from benchmarks.nb201 import main


def test_protocol_numbers(shared_benchmarks, tmp_path, capsys):
    """100 seeds x 100 queries (CIFAR-10): random matches the published RS row (93.70 +- 0.36),
    regularized evolution reaches the published REA level (>= 93.90)."""
    out = tmp_path / "nb201.json"
    code = main(["--table", str(shared_benchmarks / "nb201_cifar10.csv"), "--dataset", "cifar10", "--queries", "100",
                 "--seeds", "100", "--controllers", "random,evolution", "--json", str(out)])
    assert code == 0
    res = json.loads(out.read_text())
    assert set(res) == {"random", "evolution"}
    for row in res.values():
        assert set(row) == {"mean", "std", "runs", "seconds"} and row["runs"] == 100
    assert 93.5 <= res["random"]["mean"] <= 93.95 and 0.2 <= res["random"]["std"] <= 0.5
    assert res["evolution"]["mean"] >= 93.90
    assert res["evolution"]["mean"] > res["random"]["mean"]
    assert "random" in capsys.readouterr().out


def test_bad_table_is_exit_2(tmp_path, capsys):
    assert main(["--table", str(tmp_path / "none.csv"), "--seeds", "1"]) == 2
    assert "not found" in capsys.readouterr().err
