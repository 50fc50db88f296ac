"""Bayesian optimisation over architectures (Auto-Keras, docs/algorithms.md §3): descriptors read
from a space's graph (:mod:`.descriptor`), their edit distance (:mod:`.distance`), a Gaussian
process on its Bourgain embedding with a UCB acquisition (:mod:`.gp`), the annealed tree search
that optimises it (:mod:`.search`) and the ``bayes`` controller that runs them (:mod:`.controller`)."""
