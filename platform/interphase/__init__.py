"""interphase: active-learning potentials for battery interfaces."""

from interphase.threads import prefer_passive_waiting

__version__ = "0.1.0"

# Before torch or numpy load their OpenMP runtime (which reads the variable once,
# when it loads): idle OpenMP threads sleep instead of spinning on shared cores.
# An OMP_WAIT_POLICY already in the environment is kept (see interphase.threads).
prefer_passive_waiting()
