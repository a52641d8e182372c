"""The meta-step through ``torch.compile``: a pure function, compiled once per fit.

What is compiled is the meta-gradient: ``torch.func.grad_and_value`` of the map
from the trainable meta-parameters and one meta-batch to the algorithm's
meta-loss, ``(params, xs, ys, xq, yq) -> (gradients, (objective, loss, outputs))``,
through :func:`torch.func.functional_call`: the inner loop (torch.func's ``grad``
under ``vmap``, also for a plain MLP, whose eager fits use the hand-batched
inner loop: see :func:`_traced_learner`), the query loss and its gradient, in one
graph. The net writes the gradients into the parameters' ``.grad`` and calls no
``backward``: no autograd engine runs in a compiled meta-step. (Measured on the
MAML paper's sinusoids, ``benchmarks/RESULTS.md``: compiling only the forward
meta-loss and back-propagating through AOTAutograd's backward was no faster than
eager; the whole gradient compiled is.) With ``gradients=False`` (an accelerated
net, whose backward is accelerate's: loss scaling, mixed precision) only the
forward meta-loss ``(objective, loss, outputs)`` is compiled and the net
back-propagates it; so too where the meta-gradient is not one graph (a graph
break, which torch.func's transforms cannot span: a closed-form learner's
data-dependent Cholesky check), rather than run ``grad_and_value`` eagerly.

In a training epoch, :meth:`CompiledMetaLoss.step` goes one further where the
optimizer is torch's fused Adam or AdamW (the default, see :func:`adam_settings`):
the meta-gradient, the finiteness flag and the optimizer's update in one graph
(:func:`_adam_step`), on the optimizer's own state, no ``.grad`` set and no
optimizer call. On the MAML paper's sinusoids that took a compiled fit from 0.7x
to 0.9-1.0x the rate of compiled torch.func's meta-gradient with a fused Adam
step beside it (``benchmarks/RESULTS.md``, "the whole meta-step"). Not
compiled: the skorch module itself, meta-validation, ``adapt`` and ``score``.

Where inductor compiles (the default backend), the graph goes through
:mod:`sklmeta._core.graph_pass` too: batched products with a narrow output computed
turned round and sums over tasks taken in memory order, which MKL and inductor's
CPU kernels run several times faster (1.33x and 1.39x the compiled meta-gradient of
the MAML paper's sinusoids at 1 and 5 inner steps, ``benchmarks/graph_pass.py``).
On CPU the whole meta-gradient (and the whole step) compiles with inductor's C++
wrapper too (``cpp_wrapper=True``): the graph's calls, some 100 a step at 5 inner
steps (its C++ kernels, its ``bmm`` products, its buffers), are made from one
compiled C++ function instead of inductor's generated Python. On the MAML paper's
sinusoids that made compiled torch.func's meta-gradient with the graph pass 1.21x and
1.19x faster again at 1 and 5 inner steps (``benchmarks/graph_pass.py``) and a
compiled fit's meta-step 1.12x and 1.15x (``benchmarks/compile_options.py``), and it
took about as long to compile from an empty cache (37 against 31 s at 1 inner step,
34 against 44 at 5: one C++ build of the whole graph instead of one per kernel).
Not for a forward-only graph (above): a closed-form learner's ``torch.linalg``
operations have no C shim in the wrapper (torch logs a warning for each and calls
them through a slower proxy), and its fits compiled slower with it.
``compile__options={"cpp_wrapper": False}`` turns it off.

Shapes are static (``dynamic=False``): a fit's meta-batches all have the same
shape (``meta_batch_size`` tasks, ``k_shot`` and ``n_query`` rows per class or
task, labels re-mapped to ``0..n_way-1``), so one graph serves them all. A
meta-batch of any other shape (the last of an epoch when ``max_epochs`` is set
and ``task_splitter.n_tasks`` is not a multiple of ``meta_batch_size``) runs
eagerly, the same computation, rather than compiling a second graph.

The first meta-step compiles: its meta-loss and the meta-gradient are computed
once through the compiled function (the gradients are discarded; the
random-number state and the module's buffers are put back), so a compiler
failure is caught here. ``seconds`` is that first call's wall time less a second
identical one's: the time spent tracing and compiling. A failure (no C++
compiler for inductor, an operation torch.compile does not support) warns,
naming it, and the fit continues eagerly.

The compiled function's code object is copied per instance: torch.compile
caches graphs per code object, and a fresh one per fit keeps a process's fits
(a grid search) from filling one cache up to torch's recompile limit.
"""

import time
import types
import warnings

import torch
from torch.func import functional_call, grad_and_value

from .algorithms import Learner
from .batched_mlp import BatchedMLPInnerLoop
from .functional import SWAP_LOCK, FunctionalInnerLoop
from .graph_pass import inductor_options

__all__ = ["CompileWarning", "CompiledMetaLoss", "adam_settings"]


class CompileWarning(UserWarning):
    """torch.compile failed on the meta-step; meta-training continues eagerly."""


def _traced_learner(learner):
    """The learner whose meta-loss is compiled: ``learner``, or a view of it on torch.func.

    The hand-batched MLP inner loop is the faster one eagerly (a few large ops,
    little autograd overhead), but traced and compiled its hand-written backward,
    differentiated again, gives a larger graph than torch.func's ``grad`` under
    ``vmap`` of the same network (``benchmarks/RESULTS.md``, "compiled
    meta-gradient"). The view shares the network and the step sizes, so the same
    parameters under the same names; both inner loops are pinned to one
    reference in the tests.
    """
    if type(learner) is Learner and isinstance(learner.inner_loop, BatchedMLPInnerLoop):
        return Learner(learner.net, learner.n_features, learner.lrs,
                       FunctionalInnerLoop(learner.net))
    return learner


class _MetaLoss(torch.nn.Module):
    """``algorithm.meta_loss`` of a learner, as a module for ``functional_call``."""

    def __init__(self, algorithm, learner, loss):
        super().__init__()
        self.algorithm, self.learner, self.loss = algorithm, learner, loss

    def forward(self, xs, ys, xq, yq):
        return self.algorithm.meta_loss(self.learner, xs, ys, xq, yq, loss=self.loss)


def _pure(module, params, xs, ys, xq, yq):
    return functional_call(module, params, (xs, ys, xq, yq))


def _objective(module, trainable, frozen, xs, ys, xq, yq):
    objective, loss, out = functional_call(module, {**frozen, **trainable}, (xs, ys, xq, yq))
    return objective, (loss, out)


_GRAD_AND_VALUE = grad_and_value(_objective, argnums=1, has_aux=True)


def _pure_gradients(module, trainable, frozen, xs, ys, xq, yq):
    """``(gradients, (objective, (loss, outputs)))`` of the meta-loss, gradients by name."""
    return _GRAD_AND_VALUE(module, trainable, frozen, xs, ys, xq, yq)


def adam_settings(optimizer, named):
    """What an in-graph update of ``optimizer`` needs, or None where it cannot stand in for it.

    The update stands in for torch's fused ``Adam`` and ``AdamW`` (the default
    optimizer on CPU and CUDA), with float ``lr`` and ``betas`` and no
    ``amsgrad``, ``maximize``, ``capturable`` or ``differentiable``, whose groups
    hold exactly the trainable parameters of ``named`` (``[(name, parameter)]``),
    with no step hooks (they would not run).
    Returns ``(static, lrs)``: per group ``(beta1, beta2, eps, weight_decay,
    decoupled, names)``, and the groups' learning rates (which the compiled step
    takes as tensors, so a schedule's changes apply without recompiling).
    """
    from torch.optim import optimizer as torch_optimizer

    if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW) or any((
            optimizer._optimizer_step_pre_hooks, optimizer._optimizer_step_post_hooks,
            torch_optimizer._global_optimizer_pre_hooks,
            torch_optimizer._global_optimizer_post_hooks)):  # hooks would not run
        return None
    trainable = {id(p): k for k, p in named if p.requires_grad}
    static, lrs, seen = [], [], []
    for group in optimizer.param_groups:
        if (not group.get("fused") or any(group.get(k) for k in (
                "amsgrad", "maximize", "capturable", "differentiable"))
                or not all(type(v) is float for v in (group["lr"], *group["betas"]))):
            return None
        names = tuple(trainable.get(id(p)) for p in group["params"])
        seen.extend(names)
        static.append((*group["betas"], float(group["eps"]), float(group["weight_decay"]),
                       bool(group.get("decoupled_weight_decay", False)), names))
        lrs.append(group["lr"])
    if None in seen or sorted(seen) != sorted(trainable.values()):
        return None
    return tuple(static), lrs


def _adam_step(static):
    """The whole meta-step: the meta-gradient, the finiteness flag and Adam's update.

    A pure function of the meta-parameters and one meta-batch, but for its
    in-place updates of ``trainable`` (the parameters' detached views), the
    optimizer's moments and step counts (``state[name] = (exp_avg, exp_avg_sq,
    step)``), and the finite watch's ``found`` and ``count``: the arithmetic of
    torch's fused Adam and AdamW (``torch._fused_adam_``) given ``found_inf``.
    Once ``found`` is set, by this step's non-finite loss or gradients or by an
    earlier one, nothing changes.
    """
    def step(module, trainable, frozen, state, lrs, found, count, xs, ys, xq, yq):
        grads, (objective, (loss, out)) = _GRAD_AND_VALUE(module, trainable, frozen,
                                                         xs, ys, xq, yq)
        bad = torch.stack([~torch.isfinite(t).all()
                           for t in (*grads.values(), loss.detach())]).any()
        found.copy_(torch.maximum(found, bad.to(found.dtype)))
        count.add_(1 - found)
        skip = found > 0
        for (beta1, beta2, eps, decay, decoupled, names), lr in zip(static, lrs):
            for name in names:
                p, g = trainable[name], grads[name]
                exp_avg, exp_avg_sq, n = state[name]
                n_new = n + 1
                new = p
                if decay and decoupled:
                    new = p * (1 - lr * decay)
                elif decay:
                    g = g + decay * p
                m = torch.lerp(exp_avg, g, 1 - beta1)
                v = exp_avg_sq * beta2 + (1 - beta2) * g * g
                denom = v.sqrt() / (1 - beta2 ** n_new).sqrt() + eps
                new = new - (lr / (1 - beta1 ** n_new)) * m / denom
                for old, value in ((p, new), (exp_avg, m), (exp_avg_sq, v), (n, n_new)):
                    old.copy_(torch.where(skip, old, value))
        return objective, loss, out
    return step


def _fresh_copy(fn):
    """``fn`` with a code object of its own (its own torch.compile cache)."""
    return types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__,
                              fn.__defaults__, fn.__closure__)


def _first_line(e):
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"


def _why(e):
    """The failure in one line: torch's wrapper (BackendCompilerFailed) and its cause."""
    inner = getattr(e, "inner_exception", None) or e.__cause__
    if inner is None or inner is e:
        return _first_line(e)
    return f"{type(e).__name__} from {_first_line(inner)}"


class CompiledMetaLoss:
    """``algorithm.meta_loss(learner, ..., loss=loss)`` and its gradient, compiled for one fit.

    Parameters
    ----------
    algorithm : an algorithm of :mod:`sklmeta._core.algorithms`
    learner : Learner
        The module holding the meta-parameters.
    loss : EpisodeLoss
    options : dict, default=None
        Keyword arguments of :func:`torch.compile` (``backend``, ``mode``, ...);
        ``dynamic`` defaults to False. With inductor and no ``mode``, its
        ``options`` gain :func:`~sklmeta._core.graph_pass.layout_pass` (see
        :func:`~sklmeta._core.graph_pass.inductor_options`).
    gradients : bool, default=True
        Compile the meta-gradient with the meta-loss (``grad_and_value``, one
        graph, ``fullgraph=True`` unless ``options`` say otherwise); False
        compiles the forward meta-loss only, for a caller that back-propagates it
        itself. Where the meta-gradient is not one graph, the forward meta-loss
        is compiled instead (see ``whole_failure``).

    Attributes
    ----------
    seconds : float or None
        Time spent compiling (see the module's docstring); None before the first
        call and after a failure.
    failure : str or None
        Why compiling failed, when it did.
    whole_failure : str or None
        Why the meta-gradient did not compile as one graph, when it did not (a
        graph break: a data-dependent check such as a closed-form learner's
        Cholesky test); the forward meta-loss is then compiled on its own, and
        ``gradients`` becomes False.
    shapes : tuple or None
        The meta-batch shapes compiled for.
    """

    def __init__(self, algorithm, learner, loss, options=None, gradients=True):
        self.algorithm, self.learner, self.loss = algorithm, learner, loss
        self.options = {"dynamic": False, **(options or {})}
        self.gradients = gradients
        self.module = _MetaLoss(algorithm, _traced_learner(learner) if gradients else learner,
                                loss)
        self.seconds, self.failure, self.shapes = None, None, None
        self.whole_failure, self.step_failure = None, None
        self._compiled, self._named = None, None
        self._stepper, self._static, self._lrs, self._epoch = None, None, None, None

    def __getstate__(self):
        # a compiled function does not pickle: keep the record; the net builds a new one
        return {"seconds": self.seconds, "failure": self.failure, "options": self.options,
                "gradients": self.gradients, "whole_failure": self.whole_failure,
                "step_failure": self.step_failure, "learner": None, "shapes": None,
                "_compiled": None, "_named": None, "_stepper": None, "_static": None,
                "_lrs": None, "_epoch": None}

    def eager(self, xs, ys, xq, yq):
        return self.algorithm.meta_loss(self.learner, xs, ys, xq, yq, loss=self.loss)

    def _call(self, batch):
        """The compiled function on ``batch``: ``(objective, loss, outputs, gradients)``.

        ``gradients`` (with ``gradients=True``) is ``[(parameter, its gradient)]`` of
        the trainable parameters; otherwise None, and ``objective`` carries the
        graph to back-propagate.
        """
        if self._named is None:  # the module's parameters are those of the whole fit
            self._named = list(self.module.named_parameters())
        named = self._named
        with SWAP_LOCK:
            if not self.gradients:
                objective, loss, out = self._compiled(self.module, dict(named), *batch)
                return objective, loss, out, None
            trainable = {k: p.detach() for k, p in named if p.requires_grad}
            frozen = {k: p.detach() for k, p in named if not p.requires_grad}
            grads, (objective, (loss, out)) = self._compiled(self.module, trainable, frozen,
                                                            *batch)
        return objective, loss, out, [(p, grads[k]) for k, p in named if k in grads]

    def _first_call(self, batch):
        """Compile on ``batch``, timed, without side effects."""
        def run():
            objective, _, _, grads = self._call(batch)
            if grads is None:  # the backward graph compiles at the first backward
                wrt = [p for p in self.module.parameters() if p.requires_grad]
                torch.autograd.grad(objective, wrt, allow_unused=True)

        return self._compile_seconds(run, [])

    def _compile_seconds(self, run, updated):
        """The first call's wall time less a second's; the tensors ``run`` updates put back.

        ``updated`` are the tensors ``run`` changes in place (the meta-parameters
        and the optimizer's state, for a whole step); the module's buffers (BatchNorm's
        running statistics) and the random-number state (dropout) are put back too.
        """
        kept = [(t, t.detach().clone()) for t in (*updated, *self.module.buffers())]
        gpus = sorted({p.device.index or 0 for p in self.module.parameters()
                       if p.device.type == "cuda"})
        times = []
        try:
            with torch.random.fork_rng(devices=gpus):
                for _ in range(2):
                    start = time.perf_counter()
                    run()
                    times.append(time.perf_counter() - start)
        finally:
            with torch.no_grad():
                for t, value in kept:
                    t.copy_(value)
        return max(times[0] - times[1], 0.0)

    def step(self, xs, ys, xq, yq, optimizer, watch):
        """One whole meta-step, one compiled graph: ``(objective, loss, outputs)``, or None.

        The meta-gradient, its finiteness folded into ``watch`` (a training
        epoch's flag and count: ``found``, ``count``) and ``optimizer``'s update
        (:func:`_adam_step`), where :func:`adam_settings` says the in-graph update
        stands in for ``optimizer``. The optimizer's state is its own (``state[p]``
        as torch keeps it), so a checkpoint, or a meta-batch that steps it eagerly,
        sees one optimizer. None where this does not apply (another optimizer or
        setting, the meta-gradient not one graph, a meta-batch of another shape,
        a failure to compile: ``step_failure`` says why): the caller then takes the
        meta-gradient from :meth:`__call__` and steps the optimizer itself.
        """
        batch = (xs, ys, xq, yq)
        shapes = tuple((t.shape, t.dtype, t.device) for t in batch)
        if (not self.gradients or self.failure is not None or self.step_failure is not None
                or (self.shapes is not None and shapes != self.shapes)):
            return None
        if self._named is None:
            self._named = list(self.module.named_parameters())
        args = self._step_args(optimizer, watch)
        if args is None:
            return None
        if self._stepper is None:
            start = time.perf_counter()
            try:
                self._stepper = torch.compile(
                    _fresh_copy(_adam_step(self._epoch[1])),
                    **inductor_options({"fullgraph": True, **self.options}, self._cpu()))
                updated = [*args[0].values(), *(t for ts in args[2].values() for t in ts),
                           watch.found, watch.count]
                seconds = self._compile_seconds(lambda: self._step(args, batch), updated)
            except Exception as e:  # noqa: BLE001 - any failure: the caller's two-part step
                self.step_failure, self._stepper = _why(e), None
                # the time it took counts: the two-part step compiles on top of it
                self.seconds = (self.seconds or 0.0) + time.perf_counter() - start
                return None
            self._static, self.shapes = self._epoch[1], shapes
            self.seconds = (self.seconds or 0.0) + seconds
        out = self._step(args, batch)
        optimizer._opt_called = True  # as its step would: a schedule's order check passes
        return out

    def _cpu(self):
        """Whether the meta-parameters are all on the CPU (inductor's C++ wrapper, then)."""
        return all(t.device.type == "cpu"
                   for t in (*self.module.parameters(), *self.module.buffers()))

    def _step(self, args, batch):
        with SWAP_LOCK:
            return self._stepper(self.module, *args, *batch)

    def _step_args(self, optimizer, watch):
        """``(trainable, frozen, state, lrs, found, count)`` of :meth:`step`, or None.

        None where :func:`adam_settings` refuses ``optimizer``, or its settings
        are not those compiled for. Those settings and the tensors are read once
        per training epoch (``watch`` is an epoch's): the parameters, moments
        and step counts are updated in place, so they are the same tensors at
        every step, and building them anew was Python work at every step. The
        learning rates are read at every step (a schedule may step per batch).
        """
        epoch = self._epoch
        if epoch is None or epoch[0] is not watch:
            settings = adam_settings(optimizer, self._named)
            if settings is None or (self._stepper is not None and settings[0] != self._static):
                epoch = self._epoch = (watch, None, None)
            else:
                epoch = self._epoch = (watch, settings[0], self._tensors(optimizer))
        if epoch[1] is None:
            return None
        lrs = [group["lr"] for group in optimizer.param_groups]
        if not all(type(lr) is float for lr in lrs):
            return None
        if self._lrs is None or self._lrs[0] != lrs:  # 0-d tensors: a new rate, no recompile
            self._lrs = (lrs, [torch.tensor(lr, device=watch.device) for lr in lrs])
        return (*epoch[2], self._lrs[1], watch.found, watch.count)

    def _tensors(self, optimizer):
        """``(trainable, frozen, state)``: the detached parameters and Adam's state."""
        trainable, frozen, state = {}, {}, {}
        for k, p in self._named:
            if not p.requires_grad:
                frozen[k] = p.detach()
                continue
            trainable[k] = p.detach()
            s = optimizer.state[p]
            if not s:  # torch's lazy initialisation, as its fused Adam makes it
                s["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                s["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                s["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state[k] = (s["exp_avg"], s["exp_avg_sq"], s["step"])
        return trainable, frozen, state

    def __call__(self, xs, ys, xq, yq):
        """``(objective, reported loss, outputs, gradients)`` of one meta-batch.

        ``gradients`` is ``[(parameter, gradient)]`` when the compiled meta-gradient
        ran; None when this meta-batch ran eagerly (after a failure, or a batch of
        another shape) or with ``gradients=False``: then ``objective`` is to be
        back-propagated.
        """
        batch = (xs, ys, xq, yq)
        shapes = tuple((t.shape, t.dtype, t.device) for t in batch)
        if self.failure is not None or (self.shapes is not None and shapes != self.shapes):
            return (*self.eager(*batch), None)
        if self._compiled is None:
            spent = 0.0
            if self.gradients:
                start = time.perf_counter()
                try:
                    return self._compile(batch, shapes, _pure_gradients, fullgraph=True)
                except Exception as e:  # noqa: BLE001 - not one graph: compile the forward
                    self.whole_failure = _why(e)
                    self._compiled, self._named, self.gradients = None, None, False
                    self.module = _MetaLoss(self.algorithm, self.learner, self.loss)
                    spent = time.perf_counter() - start
            try:
                out = self._compile(batch, shapes, _pure)
                self.seconds += spent
                return out
            except Exception as e:  # noqa: BLE001 - any compiler failure: run eagerly
                self.failure = _why(e)
                self._compiled, self.seconds = None, None
                warnings.warn(
                    f"compile=True: torch.compile could not compile the meta-step "
                    f"({self.failure}); meta-training continues eagerly.",
                    CompileWarning, stacklevel=2)
                return (*self.eager(*batch), None)
        return self._call(batch)

    def _compile(self, batch, shapes, pure, fullgraph=None):
        """Compile ``pure`` on ``batch`` (timed, no side effects), then run it on ``batch``."""
        options = dict(self.options)
        if fullgraph is not None:
            options.setdefault("fullgraph", fullgraph)
        wrapper = pure is _pure_gradients and self._cpu()  # the whole meta-gradient on CPU
        self._compiled = torch.compile(_fresh_copy(pure), **inductor_options(options, wrapper))
        self.seconds = (self.seconds or 0.0) + self._first_call(batch)
        self.shapes = shapes
        return self._call(batch)
