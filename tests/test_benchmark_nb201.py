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


def test_a_one_shot_search_on_given_data_is_scored_by_the_table(shared_benchmarks, tmp_path, capsys):
    from tests.test_datasets import write_cifar

    write_cifar(tmp_path / "c", n=8)  # 40 CIFAR-shaped training images, 8 test
    out = tmp_path / "oneshot.json"
    code = main(["--table", str(shared_benchmarks / "nb201_cifar10.csv"), "--controllers", "darts", "--queries", "1",
                 "--seeds", "1", "--first-seed", "2", "--search-data", f"cifar10:{tmp_path / 'c'}", "--set", "darts.epochs=1",
                 "--set", "darts.batch_size=8", "--set", "darts.method=gdas", "--json", str(out)])
    assert code == 0
    row = json.loads(out.read_text())["darts"]
    (run,) = row["details"]
    assert row["search_data"] == f"cifar10:{tmp_path / 'c'}" and row["options"]["method"] == "gdas"
    assert run["cell"].startswith("|") and run["skips"] == run["cell"].count("skip_connect")
    assert run["test_acc"] == row["mean"] and 10 <= row["mean"] <= 95  # a row of the table
    lines = capsys.readouterr().out
    assert run["seed"] == 2 and "from seed 2" in lines
    assert "darts seed 2: epoch 1/1" in lines and f"seed 2: {run['skips']} skip(s)" in lines
    assert lines.index("from seed 2") < lines.index("darts seed 2: epoch 1/1")  # the header comes first


def test_search_data_that_cannot_be_read_is_exit_2(shared_benchmarks, tmp_path, capsys):
    code = main(["--table", str(shared_benchmarks / "nb201_cifar10.csv"), "--controllers", "darts", "--queries", "1",
                 "--seeds", "1", "--search-data", f"cifar10:{tmp_path / 'none'}"])
    assert code == 2
    out, err = capsys.readouterr()
    assert "none" in err and len(err.strip().splitlines()) == 1
    assert out == ""  # no table header before the error


def test_bad_counts_are_exit_2(tmp_path, capsys):
    for flag, value in (("--seeds", "0"), ("--queries", "0"), ("--first-seed", "-1")):
        assert main(["--table", str(tmp_path / "none.csv"), flag, value]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {flag} {value}: expected an integer >=") and len(err.splitlines()) == 1
