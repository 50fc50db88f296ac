"""Weight-sharing parts used by several spaces' supernets.

``contract``: what ``SearchSpace.supernet()`` returns (:class:`Supernet`); ``relax``: softmax /
hard-Gumbel mixing tables; ``mixed``: the memory-lean mixed edge and its search ops;
``nodes``: a DAG of nodes fed by mixed edges; ``fused``: recomputing autograd functions;
``decode``: k-best combinations; ``skip_limit``: P-DARTS' skip limit on a decoded cell.
"""

from search_spaces.supernet.contract import Supernet

__all__ = ["Supernet"]
