"""Bayesian optimisation over architectures (Auto-Keras, docs/algorithms.md §3): the edit
distance between architecture descriptors (:mod:`.distance`) and a Gaussian process on its
Bourgain embedding with a UCB acquisition (:mod:`.gp`). The ``bayes`` controller that searches
with them (network morphisms, the annealed tree search, weight inheritance) is issue 13's next
step and is not registered yet."""
