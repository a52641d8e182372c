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
data-dependent Cholesky check), rather than run ``grad_and_value`` eagerly. Not
compiled: the skorch module itself, the optimizer step, meta-validation, ``adapt``
and ``score``.

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

__all__ = ["CompileWarning", "CompiledMetaLoss"]


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
        ``dynamic`` defaults to False.
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
        self.whole_failure = None
        self._compiled, self._named = None, None

    def __getstate__(self):
        # a compiled function does not pickle: keep the record; the net builds a new one
        return {"seconds": self.seconds, "failure": self.failure, "options": self.options,
                "gradients": self.gradients, "whole_failure": self.whole_failure,
                "learner": None, "shapes": None, "_compiled": None, "_named": None}

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
        buffers = {k: b.detach().clone() for k, b in self.module.named_buffers()}
        gpus = sorted({p.device.index or 0 for p in self.module.parameters()
                       if p.device.type == "cuda"})
        times = []
        try:
            with torch.random.fork_rng(devices=gpus):  # dropout's draws are put back
                for _ in range(2):
                    start = time.perf_counter()
                    objective, _, _, grads = self._call(batch)
                    if grads is None:  # the backward graph compiles at the first backward
                        wrt = [p for p in self.module.parameters() if p.requires_grad]
                        torch.autograd.grad(objective, wrt, allow_unused=True)
                    times.append(time.perf_counter() - start)
        finally:
            with torch.no_grad():  # and so are running statistics (BatchNorm)
                for k, b in self.module.named_buffers():
                    b.copy_(buffers[k])
        return max(times[0] - times[1], 0.0)

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
        self._compiled = torch.compile(_fresh_copy(pure), **options)
        self.seconds = self._first_call(batch)
        self.shapes = shapes
        return self._call(batch)
