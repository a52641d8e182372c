"""torch's intra-op threads for sklmeta's own compute: one, restored afterwards.

The tensors of few-shot learning are tiny. On them torch's intra-op threads add
synchronisation and no speed, and on a busy machine they wait for each other:
``benchmarks/threads.py`` (its table is in ``benchmarks/RESULTS.md``, "Threads")
found a fit 10-15x slower with the default 2 threads than with 1 on a loaded
2-core machine, and no faster on an idle one. So fit, adapt, score and predict run
with ``COMPUTE_THREADS`` intra-op threads and then give the process back the
setting it had: the caller's global torch state is unchanged.
"""

import contextlib

import torch

__all__ = ["COMPUTE_THREADS", "compute_threads"]

COMPUTE_THREADS = 1


@contextlib.contextmanager
def compute_threads(n=None):
    """Run the block with ``n`` (default ``COMPUTE_THREADS``) torch threads, then restore."""
    n = COMPUTE_THREADS if n is None else n
    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if before != n and torch.get_num_threads() == n:
            torch.set_num_threads(before)
