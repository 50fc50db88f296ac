"""Controllers: they propose architectures and learn from the results."""
