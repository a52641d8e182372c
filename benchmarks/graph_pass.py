"""What ``compile=True``'s inductor graph pass saves (``sklmeta/_core/graph_pass.py``).

Two tables, in one process:

1. ``torch.bmm`` of the batched products of a second-order meta-step (meta-batch 25,
   a 40-wide layer, 10 support rows; then wider layers) in both orientations:
   ``A @ B`` as given, and ``(B^T @ A^T)^T``, the same product turned round, for
   each layout of the inputs (contiguous or a transposed view). Microseconds a
   call, the best of 5 rounds.
2. ``meta_step_speed.py``'s (e), torch.compile of torch.func's meta-gradient on the
   MAML paper's sinusoids (1-40-40-1 ReLU MLP, second order), compiled with inductor
   as torch.compile does by default, with sklmeta's pass, and with the pass and
   inductor's C++ wrapper as ``compile=True`` compiles on CPU
   (:func:`sklmeta._core.graph_pass.inductor_options`), at 1 and 5 inner steps:
   microseconds a call, the median of ``--rounds`` interleaved rounds, and the
   largest difference between the two gradients.

Usage::

    python benchmarks/graph_pass.py             # about a minute, warm inductor cache
    python benchmarks/graph_pass.py --steps 1   # 1 inner step only
"""

import argparse
import itertools
import time
import types

import numpy as np
import torch
import torch._functorch.config
import torch._inductor.config
from _machine import inductor_cache_line, run_lines  # benchmarks/: the script's own folder
from meta_step_speed import K, T, _func_meta_grad, batches, new_model

from sklmeta._core.graph_pass import inductor_options, layout_pass


def _best_us(fn, seconds=0.05, rounds=5):
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:  # warm-up, and the calls a round takes
        fn()
        n += 1
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


def _matrix(rows, cols, transposed, g):
    if transposed:  # a transposed view of a contiguous [T, cols, rows]
        return torch.randn(T, cols, rows, generator=g).transpose(1, 2)
    return torch.randn(T, rows, cols, generator=g)


# (m, k, n) of [T, m, k] @ [T, k, n]: the MAML paper's meta-step (40-wide layers, K rows),
# then wider layers, and a product whose output has more columns than the pass turns round
PRODUCTS = ((40, 40, K), (40, K, 40), (K, 40, 40), (128, 128, K), (512, 512, K), (100, 100, 40))


def orientations():
    """``[(shape, layouts, as given us, turned round us)]`` for :data:`PRODUCTS`."""
    g = torch.Generator().manual_seed(0)
    out = []
    for m, k, n in PRODUCTS:
        for ta, tb in itertools.product((False, True), repeat=2):
            a, b = _matrix(m, k, ta, g), _matrix(k, n, tb, g)
            at, bt = a.transpose(1, 2), b.transpose(1, 2)
            given = _best_us(lambda a=a, b=b: torch.bmm(a, b))
            turned = _best_us(lambda a=at, b=bt: torch.bmm(b, a))
            out.append((f"[{T}, {m}, {k}] @ [{T}, {k}, {n}]",
                        f"{'A^T view' if ta else 'A'}, {'B^T view' if tb else 'B'}", given, turned))
    return out


def _fresh(fn):
    return types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__,
                              fn.__defaults__, fn.__closure__)


def meta_gradients(steps, rounds, n=300):
    """``(inductor us, with the pass us, with the pass and the C++ wrapper us, max gradient
    difference, nodes rewritten)``."""
    model = new_model("cpu")
    params = {k: p.detach() for k, p in model.named_parameters()}
    data = batches(20, "cpu")
    fn = _func_meta_grad(model, steps, False)
    before = layout_pass().turned
    plain = torch.compile(_fresh(fn), **{"options": {"post_grad_custom_post_pass": None}})
    passed = torch.compile(_fresh(fn), **inductor_options({}))
    wrapped = torch.compile(_fresh(fn), **inductor_options({}, cpu=True))
    with torch._inductor.config.patch(fx_graph_cache=False), \
            torch._functorch.config.patch(enable_autograd_cache=False):  # the pass runs
        a, b, c = (f(params, *data[0]) for f in (plain, passed, wrapped))
    diff = max(float((a[k] - g[k]).abs().max()) for g in (b, c) for k in a)
    times = {plain: [], passed: [], wrapped: []}
    for _ in range(rounds):
        for f in times:
            start = time.perf_counter()
            for i in range(n):
                f(params, *data[i % len(data)])
            times[f].append((time.perf_counter() - start) / n * 1e6)
    return (*(float(np.median(ts)) for ts in times.values()), diff,
            # the pass ran once in each of the two graphs that have it (with the
            # Python wrapper and with the C++ one): the nodes one graph rewrote
            (layout_pass().turned - before) // 2)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 5], help="inner steps")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("# compile=True's inductor graph pass\n")
    print("\n".join(run_lines()))
    print(f"- {inductor_cache_line()}\n")
    print("Batched products, microseconds a call (best of 5 rounds):\n")
    print("| product | inputs | as given | turned round |")
    print("|---|---|---|---|")
    for shape, layouts, given, turned in orientations():
        print(f"| {shape} | {layouts} | {given:.1f} | {turned:.1f} |")
    print(f"\nCompiled torch.func meta-gradient (meta-batch {T}, K={K}+{K}, 1-40-40-1 ReLU, "
          f"second order), microseconds a call, median of {args.rounds} interleaved rounds:\n")
    print("| inner steps | inductor | inductor with the pass | speed-up | and the C++ wrapper "
          "(compile=True's) | speed-up | nodes rewritten | max gradient difference |")
    print("|---|---|---|---|---|---|---|---|")
    for steps in args.steps:
        plain, passed, wrapped, diff, turned = meta_gradients(steps, args.rounds)
        print(f"| {steps} | {plain:.0f} | {passed:.0f} | {plain / passed:.2f}x | {wrapped:.0f} "
              f"| {plain / wrapped:.2f}x | {turned} | {diff:.1e} |")


if __name__ == "__main__":
    main()
