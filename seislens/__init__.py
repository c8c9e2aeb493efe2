"""SeisLens: cross-modal retrieval for seismology."""

__version__ = "0.1.0"
