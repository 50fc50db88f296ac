"""Evaluators: they measure architectures (tables, training, cost, latency) and return metrics."""

from evaluators.base import EvalContext, EvaluationError, Evaluator, FunctionEvaluator, TrialPruned

__all__ = ["EvalContext", "EvaluationError", "Evaluator", "FunctionEvaluator", "TrialPruned"]
