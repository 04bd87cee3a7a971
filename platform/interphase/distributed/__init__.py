"""Running labeling and GP fits on Dask (the ``hpc`` extra): :mod:`interphase.distributed.dask`."""
