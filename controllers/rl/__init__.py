"""Reinforcement-learning controllers: an RNN policy over a space's tokens (:mod:`.tokens`,
:mod:`.policy`), rewards from results (:mod:`.reward`) and policy-gradient updates, REINFORCE
or PPO (:mod:`.controller`)."""

from controllers.rl.controller import RLController

__all__ = ["RLController"]
