"""Where a compiled ``fit()``'s meta-step goes, beside compiled torch.func's step.

The problem is ``meta_step_speed.py``'s (the MAML paper's sinusoids: meta-batch
25, K = 10 + 10, a 1-40-40-1 ReLU MLP, second order, Adam 1e-3). A
``MAMLRegressor(compile=True)`` is fitted for two epochs; then, in one process
and interleaved over ``--rounds`` rounds, these are timed (milliseconds per
meta-step, the median over the rounds):

- ``fit()``'s training epoch: skorch's loop over sklmeta's episodes, as ``fit``
  runs it (``run_single_epoch``): sampling, the compiled meta-gradient, the
  finiteness fold, the optimizer, skorch's callbacks and history;
- the same epoch of a second fit compiled with inductor's generated Python
  wrapper (``compile__options={"cpp_wrapper": False}``) instead of the C++ one
  ``compile=True`` takes on CPU;
- the same meta-steps without skorch: a plain loop over the episodes, the
  compiled meta-gradient and the optimizer step;
- that loop over episodes drawn beforehand (no sampling);
- the compiled meta-gradient alone, the optimizer step alone (set the
  gradients, Adam, zero them) and the episode sampling alone;
- (e) of ``meta_step_speed.py``: ``torch.compile`` of torch.func's ``grad`` of a
  ``vmap``-ed loop, with its fused Adam step, and its meta-gradient alone.

The differences between rows say what each layer costs. The figures are times,
so they move with the load of the machine; compare rows of one run.

Usage::

    python benchmarks/step_breakdown.py              # ~2 minutes on 2 cores
    python benchmarks/step_breakdown.py --steps 1    # 1 inner step only
"""

import argparse
import time
import warnings

import numpy as np
import torch
from _machine import run_lines  # benchmarks/: the script's own folder
from meta_step_speed import LR, K, T, _func_meta_grad, batches, loop_torch_func, new_model
from skorch.callbacks import Callback

from sklmeta import MAMLRegressor, TaskSplitter
from sklmeta.datasets import make_sinusoid_tasks


class _Dataset(Callback):
    """Keeps the training dataset skorch's fit loop is given."""

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.dataset = X


def _per_step(fn, n):
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) / n * 1e3


def _fitted(steps, **params):
    """A compiled ``MAMLRegressor``'s net, fitted two epochs, and its training dataset."""
    tasks = make_sinusoid_tasks(n_tasks=200, n_samples=2 * K, random_state=0)
    meta = MAMLRegressor(
        task_splitter=TaskSplitter(k_shot=K, n_query=K, n_tasks=T * 100, random_state=0),
        hidden_layer_sizes=(40, 40), inner_lr=LR, inner_steps=steps, meta_batch_size=T,
        max_epochs=2, early_stopping=False, random_state=0, compile=True, callbacks=[_Dataset()],
        **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meta.fit(tasks)
    net = meta.net_
    return net, next(cb for _, cb in net.callbacks_ if isinstance(cb, _Dataset)).dataset


def _epoch(net, dataset):
    def run():
        net.history.new_epoch()
        net.run_single_epoch(net.get_iterator(dataset, training=True), training=True,
                             prefix="train", step_fn=net.train_step)
    return run


def breakdown(steps, rounds):
    """``{row: [ms per meta-step, one a round]}`` at ``steps`` inner steps."""
    net, dataset = _fitted(steps)
    compiled, optimizer = net.compiled_meta_loss_, net.optimizer_
    drawn = list(dataset.batches(T))
    n = len(drawn)
    skorch_epoch = _epoch(net, dataset)
    python_wrapper = _epoch(*_fitted(steps, compile__options={"cpp_wrapper": False}))

    def loop(source):
        def run():
            for Xi, yq in source():
                _, _, _, grads = compiled(Xi["xs"], Xi["ys"], Xi["xq"], yq)
                for p, g in grads:
                    p.grad = g
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        return run

    def call_only():
        for Xi, yq in drawn:
            compiled(Xi["xs"], Xi["ys"], Xi["xq"], yq)

    Xi, yq = drawn[0]
    grads = compiled(Xi["xs"], Xi["ys"], Xi["xq"], yq)[3]

    def optimizer_only():
        for _ in range(n):
            for p, g in grads:
                p.grad = g
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    def sampling_only():
        for _ in dataset.batches(T):
            pass

    data = batches(20, "cpu")
    func_step = loop_torch_func("cpu", steps, False, data, compiled=True)
    model = new_model("cpu")
    detached = {k: p.detach() for k, p in model.named_parameters()}
    func_grad = torch.compile(_func_meta_grad(model, steps, False))
    func_grad(detached, *data[0])  # compiles (inductor finds (e)'s kernels built)

    def func_steps():
        for i in range(n):
            func_step(data[i % len(data)])

    def func_grad_only():
        for i in range(n):
            func_grad(detached, *data[i % len(data)])

    rows = {
        "fit()'s training epoch (skorch loop, sampling, compiled meta-gradient, Adam)":
            skorch_epoch,
        "the same, inductor's Python wrapper (compile__options={'cpp_wrapper': False})":
            python_wrapper,
        "the same meta-steps without skorch (sampling, meta-gradient, Adam)":
            loop(lambda: dataset.batches(T)),
        "without skorch, episodes drawn beforehand (meta-gradient, Adam)": loop(lambda: drawn),
        "the compiled meta-gradient alone": call_only,
        "the optimizer step alone (set .grad, fused Adam, zero_grad)": optimizer_only,
        "the episode sampling alone": sampling_only,
        "(e) compiled torch.func: meta-gradient and fused Adam": func_steps,
        "(e) compiled torch.func: meta-gradient alone": func_grad_only,
    }
    times = {name: [] for name in rows}
    for fn in rows.values():  # warm-up
        fn()
    for _ in range(rounds):
        for name, fn in rows.items():
            times[name].append(_per_step(fn, n))
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 5], help="inner steps")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("# Where a compiled fit()'s meta-step goes\n")
    print("\n".join(run_lines()))
    print(f"- problem: meta-batch {T}, K={K}+{K}, MLP 1-40-40-1 ReLU, second order, "
          f"Adam 1e-3, inner lr {LR}; ms per meta-step, median (range) of {args.rounds} "
          "interleaved rounds of 100 meta-steps\n")
    results = {steps: breakdown(steps, args.rounds) for steps in args.steps}
    print("| | " + " | ".join(f"{s} inner step{'s' if s > 1 else ''}" for s in args.steps)
          + " |")
    print("|---|" + "---|" * len(args.steps))
    for name in results[args.steps[0]]:
        cells = []
        for steps in args.steps:
            v = results[steps][name]
            cells.append(f"{np.median(v):.3f} ({min(v):.3f}-{max(v):.3f})")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
