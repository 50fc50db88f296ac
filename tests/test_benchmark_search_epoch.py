"""benchmarks/search_epoch.py: the epoch it times and what it reports (tiny supernet, CPU)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from benchmarks import search_epoch
from benchmarks.search_epoch import child, parse

TINY = ("darts", {}, {"C": 4, "layers": 3}, "classification", 10, 8, {})


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A tiny darts configuration; ``child`` sets threads and seeds, restored afterwards."""
    monkeypatch.setitem(search_epoch.CONFIGS, "darts", TINY)
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_full_epoch_is_timed_after_the_warmup(tiny: None, precision: str) -> None:
    args = parse(["--device", "cpu", "--samples", "40", "--batch", "8", "--warmup", "1", "--threads", "1"])
    r = child(args, precision)
    assert r["steps_per_epoch"] == 3 and r["warmup_steps"] == 1 and r["timed_steps"] == 2 and r["full_epoch"]
    assert r["train_images_per_s"] == pytest.approx(2 * 8 / (2 * r["mean_step_s"]))
    assert r["epoch_s_projected"] == pytest.approx(3 * r["mean_step_s"])
    assert r["precision"] == precision and r["rss_mb"] > 0 and "max_allocated_mib" not in r


def test_a_partial_epoch_is_reported_as_projected(tiny: None) -> None:
    args = parse(["--device", "cpu", "--samples", "80", "--batch", "8", "--warmup", "0", "--max-steps", "2",
                  "--threads", "1"])
    r = child(args, "fp32")
    assert r["steps_per_epoch"] == 5 and r["timed_steps"] == 2 and not r["full_epoch"]
    assert "projected from 2 of 5 steps" in search_epoch._row(r)


@pytest.mark.parametrize(("argv", "message"), [
    (["--precision", "fp16"], "--precision: unknown ['fp16']; accepted: bf16, fp32"),
    (["--batch", "64", "--samples", "100"], "--samples >= 2 x batch, got batch 64, samples 100"),
])
def test_bad_arguments_exit_2_naming_the_argument(argv: list[str], message: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("which", sorted(search_epoch.CONFIGS))
def test_every_configuration_builds_its_supernet(which: str) -> None:
    from automl import registry
    from automl.types import Task

    space_name, space_opts, net_opts, kind, classes, size, _ = search_epoch.config(which)
    net = registry.create("space", space_name, space_opts).supernet(Task(kind, 3, (size, size), classes), **net_opts)
    assert net.arch_parameters()


def test_the_demo_configuration_follows_the_quick_settings() -> None:
    from search_spaces.seg_hierarchical import SegHierarchicalSpace

    quick = SegHierarchicalSpace.quick_settings["darts"]
    _, space_opts, _, _, _, _, trainer = search_epoch.config("demo")
    assert space_opts == quick["space"]
    assert trainer == {"w_lr": quick["controller"]["w_lr"], "arch_lr": quick["controller"]["arch_lr"],
                       "arch_weight_decay": quick["controller"]["arch_weight_decay"]}
