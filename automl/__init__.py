"""automl: neural architecture search over the paper-archive search spaces."""

__version__ = "0.1.0"
