"""unmask: masked language models, with masks as first-class objects."""

__version__ = "0.1.0"
