"""automl/drawing.py: which panels an architecture drawing has and that nodes do not overlap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from automl.drawing import _bend, _label, _positions, draw_arch, panels
from search_spaces.darts import DartsSpace
from search_spaces.nb201 import NB201Space
from search_spaces.seg_hierarchical import SegHierarchicalSpace


def test_darts_cells_are_drawn_in_their_own_panels(tmp_path):
    space = DartsSpace()
    g = space.graph(space.presets()["darts-v2"])
    drawn = panels(g, "darts-v2")
    assert [name for _, name in drawn] == ["normal cell", "reduction cell"]
    assert all(str(n).startswith("normal:") for n in drawn[0][0].nodes)
    assert sum(p.number_of_nodes() for p, _ in drawn) == g.number_of_nodes()
    assert _label("normal:c_{k-2}", {}, "normal") == "$c_{k-2}$" and _label("normal:3", {}, "normal") == "3"
    assert draw_arch(space, space.presets()["darts-v2"], tmp_path / "d.png").stat().st_size > 10_000


@pytest.mark.parametrize("space", [SegHierarchicalSpace(), NB201Space(), DartsSpace()], ids=lambda s: s.name)
def test_no_two_nodes_share_a_position(space):
    g = space.graph(space.sample(np.random.default_rng(0)))
    for part, _ in panels(g):
        pos = _positions(part)
        assert len(set(pos.values())) == part.number_of_nodes()


def test_the_network_path_comes_first_then_the_cell():
    space = SegHierarchicalSpace()
    drawn = panels(space.graph(space.presets()["autodeeplab-cityscapes"]), "title")
    assert [name for _, name in drawn] == ["title", "cell"]


def test_a_node_cut_off_by_none_edges_stays_in_the_one_panel():
    space = NB201Space()
    arch = space.parse("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    g = space.graph(arch)
    drawn = panels(g, "nb201")
    assert [name for _, name in drawn] == ["nb201"] and drawn[0][0] is g


def test_edges_that_skip_a_column_arc_wider():
    """A cell's input from two layers back passes over the cell between; it is drawn on a wider
    arc so that it and its label clear that cell and the edges between neighbours."""
    space = SegHierarchicalSpace(layers=4)
    g = space.graph(space.sample(np.random.default_rng(0)))
    pos = _positions(g)
    assert abs(_bend(pos, "stem2", "stem4")) < abs(_bend(pos, "stem2", "cell0"))
    assert abs(_bend(pos, "cell0", "cell1")) < abs(_bend(pos, "cell0", "cell2"))


def test_an_edge_past_a_node_in_its_way_arcs_around_it():
    """a -> c over b on the same row (B2 -> B4 past B3 in a DARTS cell): the arc bends far enough
    that its curve keeps 1.5 node radii from b's centre; with nothing in the way 0.3 is enough."""
    pos = {"a": (0.0, 0.0), "b": (1.0, 0.0), "c": (2.0, 0.0), "d": (1.0, 3.0)}
    rad = _bend(pos, "a", "c")
    assert abs(rad) == 0.5  # 0.3 passes b 0.3 in away, inside 1.5 x 0.23 in
    x_mid, y_mid = 1.0, -rad * 2.0 / 2  # the quadratic curve's midpoint
    assert math.dist((x_mid, y_mid), pos["b"]) > 1.5 * 0.23
    assert _bend({k: v for k, v in pos.items() if k != "b"}, "a", "c") == 0.3
    assert _bend(pos, "a", "c", scale=(3.0, 1.0)) == 0.3  # wider columns: the same arc bulges 0.9 in
