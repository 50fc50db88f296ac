"""Every catalogue block is a choice of some registered space (issue 15): each space names the
blocks it can choose (``block_choices``) with an architecture that uses the block; building that
architecture must put the block's class into the network. Blocks no space offers as a choice are
listed below with the reason, and the list may not go stale."""

from __future__ import annotations

import pytest
import torch

from automl import registry
from search_spaces.blocks import block_names, get_block

# Blocks that are no space's choice, and why (each needs an input no searched network has).
NOT_A_CHOICE: dict[str, str] = {
    "dense_comparison": "CANet few-shot segmentation: compares query features with a support image's masked features",
    "iterative_refine": "CANet few-shot segmentation: refines with the dense comparison's output and the previous mask",
    "dual_encoder": "context-aware matting: needs the image and a trimap as two inputs",
}


def _choices() -> list[tuple[str, str]]:
    return [(space, block) for space in registry.names("space")
            for block in sorted(registry.create("space", space).block_choices())]


CHOICES = _choices()


def test_every_block_is_a_choice_of_some_space_or_listed_with_its_reason():
    offered = {block for _, block in CHOICES}
    assert offered <= set(block_names()), f"not catalogue blocks: {sorted(offered - set(block_names()))}"
    missing = set(block_names()) - offered - set(NOT_A_CHOICE)
    assert not missing, f"catalogue blocks no space can choose: {sorted(missing)}"
    stale = offered & set(NOT_A_CHOICE)
    assert not stale, f"listed as no space's choice but offered: {sorted(stale)}"


@pytest.mark.parametrize(("space", "block"), CHOICES, ids=[f"{s}:{b}" for s, b in CHOICES])
def test_the_architecture_a_space_gives_for_a_block_contains_it(space, block):
    s = registry.create("space", space)
    arch = s.block_choices()[block]
    torch.manual_seed(0)
    model = s.build(s.validate(arch))
    cls = get_block(block).cls
    assert any(isinstance(m, cls) for m in model.modules()), f"{space} {s.describe(arch)} has no {cls.__name__}"
