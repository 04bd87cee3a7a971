"""interphase: active-learning potentials for battery interfaces."""

__version__ = "0.1.0"
