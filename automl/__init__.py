"""automl: neural architecture search: search spaces built from a catalogue of published blocks, pluggable controllers, trained evaluators."""

__version__ = "0.1.0"
