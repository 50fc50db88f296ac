"""Presets: every registered space's presets are architectures of it, `automl spaces NAME` lists
them, and evolution / rl start a search from them (``--set controller.initial=...``)."""

from __future__ import annotations

import pytest

from automl import registry
from automl.types import Objective
from tests.helpers import run_cli

SPACES = registry.names("space")


@pytest.mark.parametrize("name", SPACES)
def test_every_preset_is_an_architecture_of_its_space_and_listed_by_automl_spaces(capsys, name):
    space = registry.create("space", name)
    code, out, err = run_cli(capsys, "spaces", name)
    assert code == 0, err
    assert name in out and "catalogue blocks it can choose" in out
    for preset in space.presets():
        assert space.validate(space.preset(preset)) == space.preset(preset)
        assert preset in out


@pytest.mark.parametrize("controller", ["evolution", "rl"])
def test_a_search_starts_from_the_named_presets_in_order(controller):
    space = registry.create("space", "darts")
    names = sorted(space.presets())[:2]
    ctl = registry.create("controller", controller, {"initial": ",".join(names)})
    ctl.setup(space, [Objective("val_acc")], seed=0)
    first = [ctl.ask() for _ in range(len(names) + 1)]
    assert [p.arch for p in first[:-1]] == [space.preset(n) for n in names]
    assert [p.note for p in first[:-1]] == [f"preset {n}" for n in names]
    assert first[-1].note != f"preset {names[-1]}"  # then the controller's own proposals


@pytest.mark.parametrize("controller", ["evolution", "rl"])
@pytest.mark.parametrize("initial", ["nope", "", ["unet", 3]])
def test_an_unknown_or_malformed_initial_is_one_line(controller, initial):
    with pytest.raises(ValueError) as bad:
        ctl = registry.create("controller", controller, {"initial": initial})
        ctl.setup(registry.create("space", "seg-unet"), [Objective("val_miou")], seed=0)
    assert len(str(bad.value).splitlines()) == 1 and f"{controller}: initial" in str(bad.value)


def test_the_cli_search_evaluates_the_preset_first(capsys, tmp_path):
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "search", "--space", "seg-unet", "--controller", "evolution", "--evaluator", "cost",
                           "--objective", "params:min", "--budget", "2", "--set", "controller.initial=unet",
                           "--run-dir", str(run), "--no-progress")
    assert code == 0, err
    code, out, err = run_cli(capsys, "show", str(run), "--trial", "0")
    assert code == 0, err
    assert "preset unet" in out
    space = registry.create("space", "seg-unet")
    assert space.describe(space.preset("unet")) in out.replace("\n", "")
