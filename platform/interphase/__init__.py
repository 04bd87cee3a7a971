"""interphase: active-learning potentials for battery interfaces."""

from interphase.threads import prefer_short_spinning

__version__ = "0.1.0"

# Before torch loads its OpenMP runtime (which reads the variable once, when it
# loads): idle OpenMP threads spin briefly, then sleep, instead of spinning for
# long on shared cores. A wait policy or spin count you set is kept
# (see interphase.threads).
prefer_short_spinning()
