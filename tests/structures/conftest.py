"""GFN2-xTB tests of the structure generators run tblite single-threaded.

tblite's OpenMP threads busy-wait; on a 2-core machine shared with other test
processes that makes small xTB calls 10-50x slower, so one thread is both
faster and steadier here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def single_openmp_thread() -> Iterator[None]:
    try:
        import tblite.interface  # noqa: F401  (loads the OpenMP runtime to be limited)
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="openmp"):
        yield
