"""Meta-steps per second: sklmeta inside ``fit()`` against the per-task loops users write.

The problem is the MAML paper's sinusoid setting: meta-batch 25, K = 10 support
+ 10 query points per task, a 1-40-40-1 ReLU MLP, Adam 1e-3, inner lr 0.01;
second- and first-order, 1 and 5 inner steps. Compared:

(a) the per-task loop of a typical tutorial: deep-copy the model for every task
    and take the inner steps with an SGD optimizer. Its in-place steps cannot be
    differentiated, so it is first-order only (query gradients of the copies are
    accumulated into the meta-model);
(b) a per-task functional loop in the style of learn2learn: clone the parameters
    per task, ``torch.autograd.grad(create_graph=True)``, loop over the tasks;
(c) facebookresearch's ``higher`` (``pip install ".[bench]"``), per task;
(d) the learn2learn pattern, written out by hand (learn2learn itself does not
    install against torch 2.13): ``MAML.clone()`` per task, i.e. a deep copy of
    the model whose parameters are graph-connected clones, adapted in place by
    ``update_module`` with ``torch.autograd.grad(create_graph=True)`` gradients,
    the query loss back-propagated into the meta-model;
(e) torch.func, the whole meta-batch at once: ``torch.func.grad`` of the mean
    query loss of a ``vmap``-ed inner loop (itself ``torch.func.grad``), eager
    and, where a C++ compiler exists, ``torch.compile``-d (compilation time is
    reported apart from the rate; ``--no-compile`` skips it).

sklmeta's ``fit()`` is timed eagerly and, where (e) compiled runs, with
``compile=True`` too (its ``compile_seconds_`` reported apart from the rate).
Compile times depend on inductor's cache of built C++ kernels, which a second
compile in one process (or a later process) finds warm; so they are also
measured each in fresh processes, from an empty cache and again from the cache
that run left (``--no-cold-compile`` skips this, about two minutes).

sklmeta is measured as a user meets it: a ``MAMLRegressor.fit`` on 200 sinusoid
tasks, episode sampling and the skorch loop included; the rate is meta-steps over
the epochs' durations (skorch's history), the one-off set-up (input validation,
first-call warm-up) is reported apart. The loops get their batches for free
(pre-drawn tensors), which favours them.

The targets (issue 15): sklmeta's fit() at or above compiled torch.func in the
same run, at least 30x the learn2learn pattern (d) at 1 inner step and 50x at 5,
and within 2x of the arithmetic bound at 5 inner steps (the meta-step's FLOPs at
the machine's GFLOP/s on this problem's batched matmuls); the ratios are printed.

It also prints the achieved GFLOP/s (FLOPs of one meta-step counted by
``torch.utils.flop_counter``) beside the machine's own GFLOP/s on matmuls of this
problem's shapes and on a 512x512 GEMM, and times a batched evaluation: adapt and
predict 1,000 digits episodes (3-way 5-shot) with ``meta.score``.

Usage::

    python benchmarks/meta_step_speed.py                  # ~6 minutes on 2 cores
    python benchmarks/meta_step_speed.py --no-compile     # without (e) compiled
    python benchmarks/meta_step_speed.py --device cuda    # on a machine with a GPU
"""

import argparse
import copy
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from _machine import (  # benchmarks/: the script's own folder
    empty_cache_env,
    inductor_cache_line,
    machine_line,
    versions_line,
)
from torch.utils.flop_counter import FlopCounterMode

import sklmeta
from sklmeta import MAMLClassifier, MAMLRegressor, TaskSplitter
from sklmeta._core import EpisodeLoss, make_mlp, select_inner_loop
from sklmeta.datasets import make_sinusoid_tasks

T, K, LR = 25, 10, 0.01


def batches(n, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        a = torch.rand(T, 1, 1, generator=g) * 4.9 + 0.1
        p = torch.rand(T, 1, 1, generator=g) * np.pi
        x = torch.rand(T, 2 * K, 1, generator=g) * 10 - 5
        y = a * torch.sin(x - p)
        out.append(tuple(t.to(device) for t in (x[:, :K], y[:, :K, 0], x[:, K:], y[:, K:, 0])))
    return out


def new_model(device):
    torch.manual_seed(0)
    return make_mlp(1, (40, 40), 1).to(device)


def loop_tutorial(device, steps, first_order, data):
    """(a) deepcopy a model per task, inner steps with torch.optim.SGD; first-order only."""
    if not first_order:
        return None
    model = new_model(device)
    meta_opt = torch.optim.Adam(model.parameters(), 1e-3)

    def step(batch):
        xs, ys, xq, yq = batch
        meta_opt.zero_grad()
        for t in range(T):
            learner = copy.deepcopy(model)
            inner_opt = torch.optim.SGD(learner.parameters(), lr=LR)
            for _ in range(steps):
                inner_opt.zero_grad()
                F.mse_loss(learner(xs[t])[:, 0], ys[t]).backward()
                inner_opt.step()
            learner.zero_grad()
            (F.mse_loss(learner(xq[t])[:, 0], yq[t]) / T).backward()
            for p, q in zip(model.parameters(), learner.parameters()):
                p.grad = q.grad if p.grad is None else p.grad + q.grad
        meta_opt.step()

    return step


def loop_functional(device, steps, first_order, data):
    """(b) learn2learn style: per-task parameter clones, autograd.grad(create_graph=True)."""
    model = new_model(device)
    names = [n for n, _ in model.named_parameters()]
    meta_opt = torch.optim.Adam(model.parameters(), 1e-3)

    def forward(params, x):
        return torch.func.functional_call(model, dict(zip(names, params)), (x,))[:, 0]

    def step(batch):
        xs, ys, xq, yq = batch
        meta_opt.zero_grad()
        total = 0.0
        for t in range(T):
            fast = [p.clone() for p in model.parameters()]
            for _ in range(steps):
                grads = torch.autograd.grad(F.mse_loss(forward(fast, xs[t]), ys[t]), fast,
                                            create_graph=not first_order)
                fast = [p - LR * g for p, g in zip(fast, grads)]
            total = total + F.mse_loss(forward(fast, xq[t]), yq[t]) / T
        total.backward()
        meta_opt.step()

    return step


def loop_higher(device, steps, first_order, data):
    """(c) facebookresearch's higher: a differentiable optimizer per task."""
    try:
        import higher
    except ImportError:
        return None
    model = new_model(device)
    meta_opt = torch.optim.Adam(model.parameters(), 1e-3)
    inner_opt = torch.optim.SGD(model.parameters(), lr=LR)

    def step(batch):
        xs, ys, xq, yq = batch
        meta_opt.zero_grad()
        for t in range(T):
            with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False,
                                      track_higher_grads=not first_order) as (fmodel, diffopt):
                for _ in range(steps):
                    diffopt.step(F.mse_loss(fmodel(xs[t])[:, 0], ys[t]))
                (F.mse_loss(fmodel(xq[t])[:, 0], yq[t]) / T).backward()
        meta_opt.step()

    return step


def _l2l_clone(module):
    """learn2learn's ``clone_module``: the module's structure, its parameters cloned
    (so the clone's updates stay on the meta-model's graph)."""
    clone = copy.deepcopy(module)
    for (_, sub), (_, orig) in zip(clone.named_modules(), module.named_modules()):
        for name, p in orig._parameters.items():
            if p is not None:
                sub._parameters[name] = p.clone()
    return clone


def _l2l_update(module, grads, lr):
    """learn2learn's ``update_module``: ``p <- p - lr * g`` on every submodule."""
    params = [(sub, name) for sub in module.modules() for name, p in sub._parameters.items()
              if p is not None]
    for (sub, name), g in zip(params, grads):
        sub._parameters[name] = sub._parameters[name] - lr * g


def loop_learn2learn(device, steps, first_order, data):
    """(d) the learn2learn pattern, by hand: a clone per task, autograd.grad(create_graph)."""
    model = new_model(device)
    meta_opt = torch.optim.Adam(model.parameters(), 1e-3)

    def step(batch):
        xs, ys, xq, yq = batch
        meta_opt.zero_grad()
        for t in range(T):
            learner = _l2l_clone(model)
            for _ in range(steps):
                params = [p for sub in learner.modules() for p in sub._parameters.values()
                          if p is not None]
                loss = F.mse_loss(learner(xs[t])[:, 0], ys[t])
                grads = torch.autograd.grad(loss, params, create_graph=not first_order,
                                            retain_graph=not first_order)
                _l2l_update(learner, grads, LR)
            (F.mse_loss(learner(xq[t])[:, 0], yq[t]) / T).backward()
        meta_opt.step()

    return step


def _func_meta_grad(model, steps, first_order):
    """The meta-gradient with torch.func: grad of the mean query loss of a vmap-ed loop."""
    def task_loss(params, x, y):
        return F.mse_loss(torch.func.functional_call(model, params, (x,))[:, 0], y)

    def query_loss(params, xs, ys, xq, yq):
        for _ in range(steps):
            grads = torch.func.grad(task_loss)(params, xs, ys)
            if first_order:
                grads = {k: g.detach() for k, g in grads.items()}
            params = {k: p - LR * grads[k] for k, p in params.items()}
        return task_loss(params, xq, yq)

    def meta_loss(params, xs, ys, xq, yq):
        return torch.vmap(query_loss, in_dims=(None, 0, 0, 0, 0))(params, xs, ys, xq, yq).mean()

    return torch.func.grad(meta_loss)


def loop_torch_func(device, steps, first_order, data, compiled=False):
    """(e) torch.func over the whole meta-batch; ``compiled``: under torch.compile."""
    model = new_model(device)
    params = dict(model.named_parameters())
    meta_opt = torch.optim.Adam(model.parameters(), 1e-3, fused=device in ("cpu", "cuda"))
    meta_grad = _func_meta_grad(model, steps, first_order)
    detached = {k: p.detach() for k, p in params.items()}
    compile_s = max_diff = None
    if compiled:
        eager = meta_grad
        meta_grad = torch.compile(meta_grad)
        start = time.perf_counter()
        fast = meta_grad(detached, *data[0])  # the first call compiles
        compile_s = time.perf_counter() - start
        slow = eager(detached, *data[0])
        max_diff = max(float((fast[k] - slow[k]).abs().max()) for k in fast)

    def step(batch):
        grads = meta_grad(detached, *batch)
        for k, p in params.items():
            p.grad = grads[k]
        meta_opt.step()

    step.compile_s, step.max_diff = compile_s, max_diff
    return step


def loop_torch_func_compiled(device, steps, first_order, data):
    return loop_torch_func(device, steps, first_order, data, compiled=True)


def rate(step, data, seconds=4.0):
    step(data[0])  # warm-up
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step(data[n % len(data)])
        n += 1
    return n / (time.perf_counter() - start)


def sklmeta_rate(device, steps, first_order, tasks, cls=MAMLRegressor, meta_lr=1e-3,
                 compile=False):
    """``(steady meta-steps/s, set-up s, compile s)`` of a fit; compile s is None eagerly."""
    splitter = TaskSplitter(k_shot=K, n_query=K, n_tasks=T * 100, random_state=0)
    params = dict(task_splitter=splitter, hidden_layer_sizes=(40, 40), inner_lr=LR,
                  inner_steps=steps, first_order=first_order, meta_lr=meta_lr, meta_batch_size=T,
                  max_epochs=6, early_stopping=False, device=device, random_state=0,
                  compile=compile)
    accepted = cls().get_params()
    meta = cls(**{k: v for k, v in params.items() if k in accepted})
    start = time.perf_counter()
    meta.fit(tasks)
    total = time.perf_counter() - start
    durations = np.asarray(meta.history_[:, "dur"])
    counts = np.asarray(meta.history_[:, "train_batch_count"])
    # the first epoch carries one-off warm-up (and the compilation): report it apart
    steady = counts[1:].sum() / durations[1:].sum()
    compile_s = getattr(meta, "compile_seconds_", None)
    setup = total - durations[1:].sum() - counts[0] / steady - (compile_s or 0.0)
    return steady, setup, compile_s


def flops_per_meta_step(steps, first_order):
    model = new_model("cpu")
    params = dict(model.named_parameters())
    xs, ys, xq, yq = batches(1, "cpu")[0]
    loss = EpisodeLoss("regression")
    counter = FlopCounterMode(display=False)
    with counter:
        out = select_inner_loop(model).adapt_predict(params, xs, ys, xq, loss=loss, lr=LR,
                                                     steps=steps, first_order=first_order)
        loss(out, yq).backward()
    return counter.get_total_flops()


def matmul_gflops(shape_a, shape_b, device, seconds=1.0):
    a, b = torch.randn(*shape_a, device=device), torch.randn(*shape_b, device=device)
    flops = 2 * np.prod(shape_a) * shape_b[-1]
    (a @ b).sum().item()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    if device != "cpu":
        torch.cuda.synchronize()
    return flops * n / (time.perf_counter() - start) / 1e9


def batched_evaluation(device, cls=MAMLClassifier, adapt_steps=None):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    seen = y < 6
    splitter = TaskSplitter(n_way=3, k_shot=5, n_query=15, n_tasks=1000, random_state=0)
    extra = {} if adapt_steps is None else {"adapt_steps": adapt_steps}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meta = cls(task_splitter=splitter, hidden_layer_sizes=(64, 64), max_epochs=1,
                   device=device, random_state=0, **extra).fit(X[seen], y[seen])
    meta.score(X[~seen][:200], y[~seen][:200])  # warm-up
    start = time.perf_counter()
    meta.score(X[~seen], y[~seen])
    return time.perf_counter() - start


def _cell(values, fmt="{:.1f}"):
    """The median, and the range where there are several runs."""
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    mid = fmt.format(float(np.median(values)))
    if len(values) == 1:
        return mid
    return f"{mid} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def compile_seconds_of(which, steps, first_order, device):
    """One compile's seconds in this process: sklmeta's ``fit(compile=True)`` or (e)'s."""
    if which == "fit":
        tasks = make_sinusoid_tasks(n_tasks=200, n_samples=2 * K, random_state=0)
        return sklmeta_rate(device, steps, first_order, tasks, compile=True)[2]
    return loop_torch_func_compiled(device, steps, first_order, batches(2, device)).compile_s


def cold_and_warm_compile(steps, first_order, device, threads):
    """``{which: (cold s, warm s)}``: each compile in a fresh process, first with an
    empty inductor cache (``_machine.empty_cache_env``), then again with the cache
    that first run left: what a user's first and later fits pay.

    In one process the second of two compiles finds the C++ kernels the first
    built (in memory and on disk), so the main tables' compile seconds favour
    whichever compiled later ((e), after sklmeta's fit): these do not.
    """
    out = {}
    for which in ("fit", "func"):
        times = []
        with tempfile.TemporaryDirectory() as cache:
            env = empty_cache_env(cache)
            for _ in ("cold", "warm"):
                cmd = [sys.executable, os.path.abspath(__file__), "--compile-time-of", which,
                       "--inner-steps", str(steps), "--threads", str(threads),
                       "--device", device] + (["--first-order"] if first_order else [])
                run = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                times.append(float(run.stdout.strip().splitlines()[-1]))
        out[which] = tuple(times)
    return out


LOOPS = {"(a) tutorial loop": loop_tutorial, "(b) functional loop": loop_functional,
         "(c) higher": loop_higher, "(d) learn2learn pattern": loop_learn2learn,
         "(e) torch.func": loop_torch_func, "(e) torch.func compiled": loop_torch_func_compiled}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0, help="timing per loop variant")
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds of every measurement; cells show median (range)")
    parser.add_argument("--no-compile", action="store_true", help="skip (e) compiled")
    parser.add_argument("--order", choices=["both", "second", "first"], default="both",
                        help="which meta-gradients to time (both: second- and first-order)")
    parser.add_argument("--only-loops", action="store_true",
                        help="skip the batched evaluation and the every-algorithm tables")
    parser.add_argument("--no-cold-compile", action="store_true",
                        help="skip the compile times from a cold and a warm inductor cache")
    parser.add_argument("--compile-time-of", choices=["fit", "func"], help=argparse.SUPPRESS)
    parser.add_argument("--inner-steps", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--first-order", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = args.device
    if args.compile_time_of:  # a child of cold_and_warm_compile: print one figure
        print(compile_seconds_of(args.compile_time_of, args.inner_steps, args.first_order,
                                 device))
        return
    compiler = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    loops = dict(LOOPS)
    why_not_compiled = None
    if args.no_compile:
        why_not_compiled = "skipped (--no-compile)"
    elif device == "cpu" and compiler is None:
        why_not_compiled = "no C++ compiler on this machine (torch.compile's CPU backend needs one)"
    if why_not_compiled:
        del loops["(e) torch.func compiled"]
    print("# Meta-step speed\n")
    print(f"- machine: {machine_line()}; {torch.get_num_threads()} torch thread(s), "
          f"device {device}")
    print(f"- {versions_line()}")
    print(f"- sklmeta from {os.path.dirname(sklmeta.__file__)} "
          "(PYTHONPATH=. times a checkout's own)")
    print(f"- command: `python {' '.join(shlex.quote(a) for a in sys.argv)}`")
    print(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    if why_not_compiled is None:
        print(f"- {inductor_cache_line()}")
    print(f"- problem: meta-batch {T}, K={K}+{K}, MLP 1-40-40-1 ReLU, Adam 1e-3, inner lr {LR}")
    print(f"- {args.repeats} round(s) of every measurement, interleaved; a cell is the median "
          "(and the range) of the rounds; ratios are taken within a round")
    if why_not_compiled:
        print(f"- (e) compiled: {why_not_compiled}")
    print()
    data = batches(20, device)
    tasks = make_sinusoid_tasks(n_tasks=200, n_samples=2 * K, random_state=0)
    orders = {"both": (False, True), "second": (False,), "first": (True,)}[args.order]
    configs = [(first_order, steps) for first_order in orders for steps in (1, 5)]
    small = matmul_gflops((T, 2 * K, 40), (T, 40, 40), device)
    compiled_fit = why_not_compiled is None
    ours_names = ["sklmeta fit()"] + (["sklmeta fit(compile=True)"] if compiled_fit else [])
    rows = {c: {"setup": [], "fit compile s": [], **{n: [] for n in ours_names + list(loops)}}
            for c in configs}
    made, compile_s = {}, {}
    for _ in range(args.repeats):
        for first_order, steps in configs:
            row = rows[first_order, steps]
            ours, setup, _ = sklmeta_rate(device, steps, first_order, tasks)
            row["sklmeta fit()"].append(ours)
            row["setup"].append(setup)
            if compiled_fit:
                ours, _, seconds = sklmeta_rate(device, steps, first_order, tasks, compile=True)
                row["sklmeta fit(compile=True)"].append(ours)
                row["fit compile s"].append(seconds)
            for name, make in loops.items():
                key = (name, first_order, steps)
                if key not in made:  # built once: compiled loops compile once
                    made[key] = make(device, steps, first_order, data)
                    if made[key] is not None and "compiled" in name:
                        compile_s[first_order, steps] = (made[key].compile_s,
                                                         made[key].max_diff)
                step = made[key]
                row[name].append(rate(step, data, args.seconds) if step is not None else None)
            print(f"done: {'first' if first_order else 'second'}-order, {steps} step(s)",
                  file=sys.stderr, flush=True)
    names = list(loops)
    print("Meta-steps per second:\n")
    print("| order | inner steps | " + " | ".join(ours_names + names) + " | set-up s |"
          + (" fit compile s |" if compiled_fit else ""))
    print("|---|---|" + "---|" * len(ours_names + names) + "---|"
          + ("---|" if compiled_fit else ""))
    for (first_order, steps), r in rows.items():
        print(f"| {'first' if first_order else 'second'} | {steps} | "
              + " | ".join(_cell(r[n]) for n in ours_names + names)
              + f" | {_cell(r['setup'], '{:.2f}')} |"
              + (f" {_cell(r['fit compile s'], '{:.1f}')} |" if compiled_fit else ""))
    print("\nsklmeta fit() (eager, and compile=True) against each (ratios of the same round), "
          "and against the arithmetic bound:\n")
    short = [n.split(")")[0] + ")" + (" compiled" if "compiled" in n else "") for n in names]
    print("| fit() | order | inner steps | " + " | ".join(f"/ {s}" for s in short)
          + " | FLOPs per step | bound steps/s | bound / sklmeta | achieved GFLOP/s |"
          + (" (e) compile s |" if "(e) torch.func compiled" in loops else ""))
    print("|---|---|---|" + "---|" * len(names) + "---|---|---|---|"
          + ("---|" if "(e) torch.func compiled" in loops else ""))
    for ours in ours_names:
        for (first_order, steps), r in rows.items():
            flops = flops_per_meta_step(steps, first_order)
            bound = small * 1e9 / flops
            ratios = []
            for n in names:
                pairs = [a / b for a, b in zip(r[ours], r[n]) if b]
                ratios.append(_cell(pairs, "{:.1f}x") if pairs else "n/a")
            line = (f"| {'compile=True' if 'compile' in ours else 'eager'} | "
                    f"{'first' if first_order else 'second'} | {steps} | " + " | ".join(ratios)
                    + f" | {flops / 1e6:.2f} M | {bound:.0f} | "
                    + _cell([bound / x for x in r[ours]], "{:.1f}x")
                    + f" | {_cell([flops * x / 1e9 for x in r[ours]], '{:.2f}')} |")
            if "(e) torch.func compiled" in loops:
                seconds, diff = compile_s.get((first_order, steps), (float("nan"), float("nan")))
                line += f" {seconds:.0f} (meta-gradient vs eager: max diff {diff:.1e}) |"
            print(line)
    big = matmul_gflops((512, 512), (512, 512), device)
    print(f"\nMachine: {small:.1f} GFLOP/s on this problem's batched matmuls "
          f"([{T}, {2 * K}, 40] @ [{T}, 40, 40]), {big:.1f} GFLOP/s on a 512x512 GEMM; the "
          "bound is a meta-step's FLOPs (torch.utils.flop_counter) at the first figure. "
          "(a) cannot be second-order (in-place optimizer steps). Set-up: one-off time of a "
          "fit (input validation, first-epoch warm-up), apart from the rate and from fit compile s "
          "(compile=True's compile_seconds_); (e) compile s: the first call of (e) compiled, "
          "whose meta-gradient is compared with the eager one's.")
    if compiled_fit and not args.no_cold_compile:
        print("\nCompile seconds, second order, each in a fresh process: from a cold inductor "
              "cache (empty: a user's first compiled fit on a machine), then warm (the C++ "
              "kernels that first run built, in inductor's on-disk cache: a later fit). The "
              "tables above compile sklmeta's fit first, so (e) found its kernels built:\n")
        print("| inner steps | fit(compile=True) cold | warm | (e) compiled cold | warm |")
        print("|---|---|---|---|---|")
        for steps in (1, 5):
            times = cold_and_warm_compile(steps, False, device, args.threads)
            print(f"| {steps} | {times['fit'][0]:.1f} | {times['fit'][1]:.1f} | "
                  f"{times['func'][0]:.1f} | {times['func'][1]:.1f} |", flush=True)
    if args.only_loops:
        return
    seconds = batched_evaluation(device)
    print(f"\nBatched evaluation: adapt + predict + score of 1,000 digits episodes (3-way 5-shot, "
          f"MLP 64-64-64-3) with meta.score: {seconds:.2f} s.")
    algorithms(device, tasks)


def algorithms(device, tasks):
    """Every algorithm on the same problem: meta-steps/s in fit(), and adaptation time."""
    print("\n## Every algorithm\n")
    print("Meta-steps per second inside fit() on the problem above (second-order where it "
          "applies; Reptile is first-order by construction and adapts on support and query "
          "rows together; ProtoNet has no inner loop and is a classifier, so it is timed "
          "on digits below). Outer learning rate 1e-4 here, so that Meta-SGD's 5-step rates "
          "stay finite through the timed epochs; the speed does not depend on it:\n")
    print("| algorithm | 1 inner step | 5 inner steps |")
    print("|---|---|---|")
    for name, cls in [("MAML", sklmeta.MAMLRegressor), ("Meta-SGD", sklmeta.MetaSGDRegressor),
                      ("ANIL", sklmeta.ANILRegressor), ("Reptile", sklmeta.ReptileRegressor)]:
        rates = [sklmeta_rate(device, steps, False, tasks, cls, meta_lr=1e-4)[0]
                 for steps in (1, 5)]
        print(f"| {name} | {rates[0]:.0f} | {rates[1]:.0f} |", flush=True)
    print("\nAdapt + predict + score of 1,000 digits episodes (3-way 5-shot, MLP 64-64-64-3) "
          "with meta.score, seconds:\n")
    print("| algorithm | 1 adaptation step | 10 adaptation steps |")
    print("|---|---|---|")
    for name, cls in [("MAML", MAMLClassifier), ("Meta-SGD", sklmeta.MetaSGDClassifier),
                      ("ANIL", sklmeta.ANILClassifier), ("Reptile", sklmeta.ReptileClassifier)]:
        times = [batched_evaluation(device, cls, steps) for steps in (1, 10)]
        print(f"| {name} | {times[0]:.2f} | {times[1]:.2f} |", flush=True)
    proto = batched_evaluation(device, sklmeta.ProtoNetClassifier)
    print(f"| ProtoNet (prototypes, no steps) | {proto:.2f} | - |")


if __name__ == "__main__":
    main()
