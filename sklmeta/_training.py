"""The skorch side: episodes as a dataset, meta-batches as batches, one net.

skorch runs the loop (epochs, history, callbacks, progress bar, early stopping,
checkpoints); :class:`MetaNet` overrides only ``train_step_single`` and
``validation_step`` to put the functional core (:mod:`sklmeta._core`)
where skorch would call ``module(X)``.

A batch is ``({"xs": [T, S, D], "ys": [T, S], "xq": [T, Q, D]}, yq [T, Q])``:
``T`` tasks, support and query sets stacked task-first, episode labels
re-mapped to ``0..n_way-1``.
"""

import copy
import math

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping, EpochScoring, PassthroughScoring, ProgressBar
from skorch.helper import predefined_split
from skorch.hf import AccelerateMixin
from skorch.history import History
from skorch.utils import noop, to_device

from ._core import EpisodeLoss
from ._core.compiled import CompiledMetaLoss
from ._episodes import EpisodeSampler
from ._preprocessing import scale_target, to_tensor

__all__ = ["AcceleratedMetaNet", "DivergenceWarning", "EpisodeDataset", "EpisodeLoader",
           "EpisodeTensors", "MetaNet", "MetaTrainingDiverged", "RandomStartEarlyStopping",
           "build_net", "episode_tensors"]


class DivergenceWarning(UserWarning):
    """Meta-validation diverged (its loss is not finite), so meta-training stopped early.

    The estimator keeps the weights of the best meta-validation before it; the
    message names the epoch, the epoch kept, and what to change.

    See Also
    --------
    MetaTrainingDiverged : Raised when a meta-step itself is not finite.

    Examples
    --------
    >>> from sklmeta import DivergenceWarning
    >>> issubclass(DivergenceWarning, UserWarning)
    True
    """


class MetaTrainingDiverged(FloatingPointError):
    """The meta-loss or the meta-gradient of a meta-step is NaN or infinite.

    Raised before the optimizer applies that step, so the meta-parameters are
    those of the last finite step: the estimator stays fitted with them. The
    message names the epoch and the meta-step and says which learning rate to
    lower.

    See Also
    --------
    sklmeta.MAMLClassifier : One of the estimators whose ``fit`` raises it.

    Examples
    --------
    >>> from sklmeta import MetaTrainingDiverged
    >>> issubclass(MetaTrainingDiverged, FloatingPointError)
    True
    """


class EpisodeTensors:
    """Task pools as one tensor, drawn into task-first meta-batches.

    Parameters
    ----------
    X : list of float32 Tensor [n_i, D]
        Each pool's (standardised, padded) inputs.
    y : list of ndarray
        Each pool's targets (class labels or real values).
    sampler : sklmeta._episodes.EpisodeSampler
        Over the same pools, in the same order; it validated them.
    task : {"classification", "regression"}
    class_index : ndarray of int [pool, class], default=None
        With fixed labels: the label of each pool's ``c``-th class (in sorted order).
    """

    def __init__(self, X, y, sampler, task, class_index=None):
        self.sampler, self.task = sampler, task
        self.class_index = None if class_index is None else torch.as_tensor(class_index)
        self.X = torch.cat(X)
        self.y = None if task == "classification" else torch.as_tensor(
            np.concatenate(y), dtype=torch.float32)

    def draw(self, rng, n):
        """``n`` episodes as a task-first batch ``(xs, ys, xq, yq)``.

        Support and query rows come class by class in the order the classes were
        drawn, so the episode labels ``0..n_way-1`` are a fresh random assignment;
        with a ``class_index`` (``label_mode="fixed"``) each class keeps its own
        label instead.
        """
        return next(self.draw_many(rng, [n]))

    def draw_many(self, rng, sizes):
        """The batches of consecutive :meth:`draw` calls of ``sizes``, drawn at once.

        The same episodes as those calls (the sampler takes the random numbers in
        their order), gathered in one indexing each; the batches are views of it.
        """
        rows, pools, classes = self.sampler.draw_many(rng, sizes, with_classes=True)
        support, query = (torch.from_numpy(r) for r in self.sampler.split(rows))
        n = len(rows)
        if self.class_index is not None:
            labels = self.class_index[torch.from_numpy(pools)[:, None], torch.from_numpy(classes)]
            ys = labels.repeat_interleave(self.sampler.k, dim=1)
            yq = labels.repeat_interleave(self.sampler.q, dim=1)
        elif self.task == "classification":
            ways = torch.arange(self.sampler.n_way)
            ys = ways.repeat_interleave(self.sampler.k).expand(n, -1)
            yq = ways.repeat_interleave(self.sampler.q).expand(n, -1)
        else:
            ys, yq = self.y[support], self.y[query]
        xs, xq = self.X[support], self.X[query]
        start = 0
        for size in sizes:
            part = slice(start, start + size)
            start += size
            yield xs[part], ys[part], xq[part], yq[part]

    def chunk(self, batch_size):
        """How many meta-batches of ``batch_size`` :meth:`draw_many` draws at once:
        as many as fit in ``_CHUNK_VALUES`` gathered values and as many random keys
        as the sampler draws in one batch (so a few MB at most), at least one."""
        s = self.sampler
        rows = (s.n_way or 1) * (s.k + s.q)
        values = batch_size * rows * (self.X.shape[-1] + 1)
        keys = batch_size * (s.n_way or 1) * s._longest + batch_size * s.counts.shape[1]
        return max(1, min(self._CHUNK_VALUES // values, s._MAX_KEYS // keys))

    _CHUNK_VALUES = 1 << 20  # floats of episodes drawn at once (4 MB)


def episode_tensors(pools, n_way, splitter, width, scaling, label_classes=None):
    """:class:`EpisodeTensors` of task pools, scaled by ``scaling`` and zero-padded.

    ``scaling`` is a :class:`sklmeta._preprocessing.Scaling`: global statistics,
    each pool's own, or none; a regressor's targets are scaled alike. With
    ``label_classes`` (fixed labels), every class keeps its index among them.
    """
    sampler = EpisodeSampler([p.y if n_way is not None else None for p in pools],
                             [len(p.y) for p in pools], n_way=n_way, k_shot=splitter.k_shot,
                             n_query=splitter.n_query, names=[p.name for p in pools])
    tensors, targets = [], []
    for p in pools:
        x_mean, x_scale, y_mean, y_scale = scaling.of_task(p.X, p.y)
        tensors.append(to_tensor(p.X, width, x_mean, x_scale, "cpu"))
        targets.append(p.y if n_way is not None else scale_target(p.y, y_mean, y_scale))
    class_index = None
    if label_classes is not None:
        class_index = np.zeros(sampler.counts.shape, dtype=np.int64)
        for i, p in enumerate(pools):
            own = np.searchsorted(label_classes, np.unique(p.y))
            class_index[i, : len(own)] = own
    return EpisodeTensors(tensors, targets, sampler,
                          "classification" if n_way is not None else "regression", class_index)


class EpisodeDataset(torch.utils.data.Dataset):
    """Episodes drawn from :class:`EpisodeTensors`, ``n_episodes`` per epoch.

    ``fixed=False`` (training): fresh episodes every epoch, drawn from a
    ``RandomState`` seeded by ``(seed, epoch)``, so a fit is reproducible, never
    holds more than a few MB of episodes, and an epoch's episodes do not
    depend on how many epochs ran before it in this process: a meta-training
    resumed from a checkpoint at epoch ``e`` draws the very episodes an
    uninterrupted run draws in epoch ``e + 1``. :class:`MetaNet` sets ``epoch``
    (1-based, skorch's count, which counts a loaded history) as each epoch
    begins. ``fixed=True`` (validation): the same episodes at every pass, drawn
    again from ``seed`` at every pass, so the monitored score moves only with
    the weights and memory holds a few MB of episodes, not every episode.

    Several meta-batches are drawn at once (:meth:`EpisodeTensors.draw_many`,
    up to :meth:`EpisodeTensors.chunk` of them): the very episodes that drawing
    them one at a time gives, for a fraction of the per-batch cost.
    """

    def __init__(self, pools, n_episodes, seed, fixed=False):
        self.pools, self.n_episodes, self.seed, self.fixed = pools, n_episodes, int(seed), fixed
        self.epoch = 1
        self.process = 0  # index of this process in a distributed (accelerate) fit

    def __len__(self):
        return self.n_episodes

    def __getitem__(self, i):  # pragma: no cover - batches come from EpisodeLoader
        raise TypeError("EpisodeDataset is iterated by meta-batches through EpisodeLoader.")

    def batches(self, batch_size):
        # process 0 (and any single-process fit) draws from (seed, epoch); other
        # processes of a distributed fit draw their own episodes
        if self.fixed:
            key = self.seed
        else:
            key = [self.seed, self.epoch] + ([self.process] if self.process else [])
        rng = np.random.RandomState(key)
        sizes = [min(batch_size, self.n_episodes - start)
                 for start in range(0, self.n_episodes, batch_size)]
        per_draw = self.pools.chunk(batch_size)
        for at in range(0, len(sizes), per_draw):
            for xs, ys, xq, yq in self.pools.draw_many(rng, sizes[at: at + per_draw]):
                yield {"xs": xs, "ys": ys, "xq": xq}, yq


class EpisodeLoader:
    """skorch iterator over an :class:`EpisodeDataset`: one batch is one meta-batch."""

    def __init__(self, dataset, batch_size=16, **kwargs):
        if kwargs:
            raise TypeError(f"EpisodeLoader got unexpected options {sorted(kwargs)}")
        self.dataset, self.batch_size = dataset, batch_size

    def __len__(self):
        return math.ceil(len(self.dataset) / self.batch_size)

    def __iter__(self):
        return self.dataset.batches(self.batch_size)


class MetaNet(NeuralNet):
    """skorch net whose training step is a meta-step.

    The module is a :class:`~sklmeta._core.algorithms.Learner` (the network and any
    other meta-learned tensors); the criterion is an
    :class:`~sklmeta._core.functional.EpisodeLoss`, used for the inner loss and the
    meta-loss alike.

    Parameters (besides skorch's)
    -----------------------------
    algorithm : an algorithm of :mod:`sklmeta._core.algorithms`
        Its meta-loss is what a training step back-propagates. Validation episodes
        are adapted as ``adapt`` will adapt (``adapt_steps``), so that early
        stopping watches what ``adapt`` delivers.
    meta_compile : dict or None
        Options of ``torch.compile`` for the meta-step
        (:class:`~sklmeta._core.compiled.CompiledMetaLoss`): the meta-loss and its
        gradient in one compiled graph, written into the parameters' ``.grad``
        with no ``backward``; None runs it eagerly. Not skorch's ``compile``,
        which would compile the module's forward.
    """

    # the compiled meta-step computes the gradients itself (no backward); a net
    # whose backward does more than autograd's (accelerate's) compiles the forward only
    compiled_gradients = True

    def __init__(self, module, *args, algorithm=None, meta_compile=None, **kwargs):
        super().__init__(module, *args, **kwargs)
        self.algorithm = algorithm
        self.meta_compile = meta_compile

    def meta_loss(self, xs, ys, xq, yq):
        """``(objective, reported loss, outputs, gradients)`` of a meta-batch.

        ``gradients``, ``[(parameter, meta-gradient)]``, come from the compiled
        meta-step; None when the meta-loss ran eagerly (or only its forward was
        compiled): ``objective`` is then to be back-propagated.
        """
        if self.meta_compile is None:
            return (*self.algorithm.meta_loss(self.module_, xs, ys, xq, yq,
                                              loss=self.criterion_), None)
        return self._compiled_meta_loss()(xs, ys, xq, yq)

    def _compiled_meta_loss(self):
        compiled = getattr(self, "compiled_meta_loss_", None)
        if compiled is None or compiled.learner is not self.module_:  # a new fit or net
            compiled = self.compiled_meta_loss_ = CompiledMetaLoss(
                self.algorithm, self.module_, self.criterion_, self.meta_compile,
                gradients=self.compiled_gradients)
        return compiled

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_mode_cache", None)  # modules pickled twice otherwise; rebuilt on use
        return state

    def _set_training(self, training=True):
        """skorch's: every module and criterion in training or evaluation mode.

        skorch sets the mode at every meta-step, which walks the module trees
        (about 20 microseconds for a small MLP, 3% of a compiled meta-step); here
        the walk is skipped where every module is in that mode already, read
        from a list of them made once per module.
        """
        tops = tuple(getattr(self, name + "_", None) for name in self._modules + self._criteria)
        cached = getattr(self, "_mode_cache", None)
        if cached is None or len(cached[0]) != len(tops) or any(
                a is not b for a, b in zip(cached[0], tops)):
            cached = self._mode_cache = (tops, [m for top in tops
                                                if isinstance(top, torch.nn.Module)
                                                for m in top.modules()])
        if any(m.training is not training for m in cached[1]):
            super()._set_training(training)

    def train_step(self, batch, **fit_params):
        """One meta-step: compiled whole where it can be (:meth:`_whole_step`), else skorch's."""
        step = self._whole_step(batch) if not fit_params else None
        return step if step is not None else super().train_step(batch, **fit_params)

    def _whole_step(self, batch):
        """The meta-step as one compiled graph, optimizer update included; None if not here.

        With ``meta_compile``, in a training epoch whose finiteness flag the
        optimizer takes (the default fused Adam, or AdamW), the meta-gradient,
        the flag and the update run in one graph
        (:meth:`~sklmeta._core.compiled.CompiledMetaLoss.step`): no ``.grad``, no
        separate optimizer call. Not where anything else has a hand in the step:
        a callback's ``on_grad_computed`` (gradient clipping), another training
        step, several optimizers, gradients combined across processes.
        """
        if not getattr(self, "_whole_step_ok", False):  # set only with an epoch's watch
            return None
        self._set_training(True)
        out = self._compiled_meta_loss().step(*self._episode_batch(batch), self.optimizer_,
                                              self._finite_watch)
        if out is None:
            return None
        _, loss, outputs = out
        return {"loss": loss, "y_pred": outputs}

    def _whole_step_applies(self):
        """Whether nothing but the compiled graph has a hand in a meta-step (see above).

        Decided once per training epoch: the callbacks, the optimizers and the
        net's class do not change within one.
        """
        return (self.meta_compile is not None and self.compiled_gradients
                and self._optimizers == ["optimizer"]
                and type(self).train_step_single is MetaNet.train_step_single
                and type(self).sync_gradients is MetaNet.sync_gradients
                and all(type(cb).on_grad_computed is Callback.on_grad_computed
                        for _, cb in self.callbacks_))

    def _episode_batch(self, batch):
        """A loader's meta-batch as ``(xs, ys, xq, yq)`` on the net's data device."""
        Xi, yq = batch
        return tuple(to_device(t, self.data_device) for t in (Xi["xs"], Xi["ys"], Xi["xq"], yq))

    def compile_seconds(self):
        """Seconds the meta-step's torch.compile took; None if it did not compile."""
        return getattr(getattr(self, "compiled_meta_loss_", None), "seconds", None)

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Start the epoch in the history, then tell the training episodes its number.

        The number is ``len(history)``, so it counts the epochs of a history
        loaded from a checkpoint (skorch's ``LoadInitState`` loads it at train
        begin): a resumed run draws the episodes an uninterrupted run would.
        """
        super().on_epoch_begin(net, dataset_train=dataset_train, dataset_valid=dataset_valid,
                               **kwargs)
        if isinstance(dataset_train, EpisodeDataset):
            dataset_train.epoch = len(self.history)

    @property
    def data_device(self):
        """Where the episode tensors go: the net's device."""
        return self.device

    def backward(self, loss):
        """Back-propagate a meta-loss (the hook an accelerated net replaces)."""
        loss.backward()

    def sync_gradients(self):
        """Combine the meta-gradients of several processes; one process: nothing to do."""

    def query_outputs(self, Xi, training):
        xs, ys, xq = (to_device(Xi[k], self.data_device) for k in ("xs", "ys", "xq"))
        return self.algorithm.query_outputs(self.module_, xs, ys, xq, loss=self.criterion_,
                                            training=training)

    def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
        """skorch's epoch; a training epoch checks finiteness once, at its end.

        With an optimizer that takes a ``found_inf`` flag (a fused Adam or SGD:
        the default on CPU and CUDA), each meta-step only folds its loss and
        gradients into that device flag, with no host synchronisation; once set,
        the optimizer skips every later update (weights, moments and step
        counts), so the weights stay those of the last finite step, and the
        epoch raises :class:`MetaTrainingDiverged` as it ends, naming that step.
        """
        watch = _FiniteWatch.of(self.optimizer_) if training else None
        if watch is not None:
            watch.params = list(self.module_.parameters())  # fixed for the epoch
        self._finite_watch = watch
        self._whole_step_ok = watch is not None and self._whole_step_applies()
        try:
            if training and iterator is not None and self._losses_read_at_epoch_end():
                self._training_epoch(iterator, prefix, step_fn, **fit_params)
            else:
                super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)
        finally:
            self._finite_watch, self._whole_step_ok = None, False
            if watch is not None:
                watch.release()
                if watch.diverged():
                    step = watch.finite_steps() + 1
                    batches = self.history[-1, "batches"]
                    loss = (batches[step - 1].get("train_loss", math.nan)
                            if step <= len(batches) else math.nan)
                    self._diverged(step, loss)  # also over a Ctrl-C in the epoch

    def _losses_read_at_epoch_end(self):
        """Whether no callback reads a meta-step's loss from the history as it ends.

        skorch's own callbacks that run at every batch end are the progress bar
        (which shows the loss) and the epoch scorings (which only collect
        predictions); any other ``on_batch_end`` may read the loss, as a float.
        """
        if type(self.history) is not History:  # a distributed history: skorch's way
            return False
        return all(type(cb).on_batch_end in (Callback.on_batch_end, EpochScoring.on_batch_end)
                   for _, cb in self.callbacks_)

    def _training_epoch(self, iterator, prefix, step_fn, **fit_params):
        """skorch's training epoch, with every meta-step's loss read once, at its end.

        skorch records ``step["loss"].item()`` at each meta-step: a host
        synchronisation per step (on a GPU, the host waits for the device at every
        step). Here the history holds the detached loss tensor until the epoch
        ends (or stops: an error, a Ctrl-C), then the floats skorch would have
        recorded, read in one transfer. :meth:`run_single_epoch` takes this path
        only when no callback reads the losses during the epoch.

        skorch's ``notify`` calls the net's and every callback's batch hooks;
        here the hooks that do something are listed once an epoch
        (:meth:`_batch_hooks`) and called in the same order, the same
        arguments: a compiled meta-step takes a fraction of a millisecond, and
        calling a dozen empty methods twice per step was a tenth of that.
        """
        key, size_key, rows = prefix + "_loss", prefix + "_batch_size", []
        begin, end = self._batch_hooks("on_batch_begin"), self._batch_hooks("on_batch_end")
        try:
            batch_count = 0
            for batch in iterator:
                for hook in begin:
                    hook(self, batch=batch, training=True)
                step = step_fn(batch, **fit_params)
                row = list.__getitem__(self.history, -1)["batches"][-1]  # History: a list
                row[key] = step["loss"].detach()
                rows.append(row)
                row[size_key] = len(batch[1])  # the tasks
                for hook in end:
                    hook(self, batch=batch, training=True, **step)
                batch_count += 1
            self.history.record(prefix + "_batch_count", batch_count)
        finally:
            if rows:
                values = torch.stack([row[key].reshape(()) for row in rows]).tolist()
                for row, value in zip(rows, values):
                    row[key] = value

    def _batch_hooks(self, name):
        """The bound ``name`` methods skorch's ``notify(name)`` calls that are not empty.

        The net's own first, then the callbacks' in their order, as ``notify``
        calls them; skorch's empty defaults (``Callback``'s, the net's
        ``on_batch_end``) are left out. With a ``notify`` of a subclass's own,
        that ``notify`` itself.
        """
        if type(self).notify is not NeuralNet.notify:
            return [lambda net, **kwargs: net.notify(name, **kwargs)]
        own = getattr(type(self), name)
        hooks = [] if own is NeuralNet.on_batch_end else [getattr(self, name)]
        hooks += [getattr(cb, name) for _, cb in self.callbacks_
                  if getattr(type(cb), name) is not getattr(Callback, name)]
        return hooks

    def train_step_single(self, batch, **fit_params):
        """One meta-step: the algorithm's meta-loss, then this net's own backward.

        A compiled meta-step returns the meta-gradients themselves: they become
        the parameters' ``.grad`` (skorch's ``zero_grad`` left them None) and no
        backward runs.
        """
        self._set_training(True)
        objective, loss, out, grads = self.meta_loss(*self._episode_batch(batch))
        if grads is None:
            self.backward(objective)
        else:
            for p, g in grads:
                if p.grad is None:
                    p.grad = g
                else:  # an optimizer that zeroes rather than drops the gradients
                    p.grad.add_(g)
        self.sync_gradients()
        self._check_finite(loss)
        return {"loss": loss, "y_pred": out}

    def _check_finite(self, loss):
        """Stop, before the optimizer step, at a NaN or infinite meta-loss or gradient.

        In a training epoch whose optimizer takes a ``found_inf`` flag, only fold
        this step into the flag (see :meth:`run_single_epoch`); otherwise check now.
        """
        watch = getattr(self, "_finite_watch", None)
        params = self.module_.parameters() if watch is None else watch.params
        tensors = [p.grad for p in params if p.grad is not None]
        tensors.append(loss.detach().reshape(1))
        if watch is not None:
            watch.fold(tensors)
            return
        if _any_non_finite(tensors):
            self._diverged(len(self.history[-1, "batches"]) if len(self.history) else 1,
                           loss.item())

    def _diverged(self, step, loss):
        what = "meta-loss" if not math.isfinite(loss) else "meta-gradient"
        steps = getattr(self.algorithm, "steps", None)
        inner_lr = steps.inner_lr if steps is not None else None
        advice = (f"inner_lr (now {inner_lr}) or meta_lr (now {self.lr})" if inner_lr
                  else f"meta_lr (now {self.lr})")
        raise MetaTrainingDiverged(
            f"Meta-training diverged at epoch {len(self.history)}, meta-step "
            f"{step} of the epoch: the {what} is not finite "
            f"(loss {loss:.4g}). The meta-parameters are those of the last finite "
            f"step; try a smaller {advice}."
        )

    def _evaluate_batch(self, batch):
        """Query loss and accuracy (None for regression) of one meta-batch, no graph."""
        Xi, yq = batch
        yq = to_device(yq, self.data_device)
        with torch.no_grad():  # torch.func.grad still differentiates the inner loop
            out = self.query_outputs(Xi, training=False)
            loss = self.get_loss(out, yq, X=Xi, training=False)
        acc = None
        if self.criterion_.task == "classification":
            pred = out[..., : self.criterion_.n_classes].argmax(-1)
            acc = (pred == yq).float().mean().item()
        return out, loss, acc

    def validation_step(self, batch, **fit_params):
        self._set_training(False)
        out, loss, acc = self._evaluate_batch(batch)
        if acc is not None:
            self.history.record_batch("valid_acc", acc)
        return {"loss": loss, "y_pred": out}

    def evaluate(self, dataset):
        """Mean query loss and accuracy over ``dataset`` (weighted by meta-batch size)."""
        self._set_training(False)
        totals, n = {"valid_loss": 0.0, "valid_acc": 0.0}, 0
        for batch in self.get_iterator(dataset, training=False):
            _, loss, acc = self._evaluate_batch(batch)
            size = len(batch[1])
            totals["valid_loss"] += loss.item() * size
            totals["valid_acc"] += (acc or 0.0) * size
            n += size
        return {k: v / n for k, v in totals.items()}


def _fold_non_finite(tensors, found, one):
    """Set ``found`` (a 0-d float tensor) if any of ``tensors`` is not finite.

    ``torch.amp``'s own check: one fused pass over the tensors, no host sync
    (its unscaling multiplies by ``one``, which changes no value).
    """
    groups = {}
    for t in tensors:
        groups.setdefault(t.dtype, []).append(t)
    for group in groups.values():
        torch._amp_foreach_non_finite_check_and_unscale_(group, found, one)


def _any_non_finite(tensors):
    """Whether any of ``tensors`` holds a NaN or an infinity (one host sync)."""
    device = tensors[0].device
    if device.type in ("cpu", "cuda") and all(t.device == device for t in tensors):
        found = torch.zeros((), device=device)
        _fold_non_finite(tensors, found, torch.ones((), device=device))
        return bool(found)
    return not all(bool(torch.isfinite(t).all()) for t in tensors)


class _FiniteWatch:
    """A training epoch's device flag, set at its first non-finite meta-step.

    The flag is the optimizer's ``found_inf`` (what ``torch.amp.GradScaler``
    hands a fused optimizer): while it is set, the fused step changes nothing.
    ``count`` counts, on the device, the steps before the first non-finite
    one. :meth:`of` gives None where the optimizer cannot take the flag (not
    fused, wrapped, already given one, or parameters on several or other
    devices): the net then checks every step on the host.
    """

    def __init__(self, optimizer, device):
        self.optimizer, self.device = optimizer, device
        self.found = torch.zeros((), device=device)
        self.count = torch.zeros((), device=device)
        self.one = torch.ones((), device=device)
        optimizer.found_inf = self.found

    @classmethod
    def of(cls, optimizer):
        # torch's own fused steps honour found_inf; a wrapper (accelerate's) would not
        if not (isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD))
                and getattr(optimizer, "_step_supports_amp_scaling", False)
                and getattr(optimizer, "found_inf", None) is None
                and getattr(optimizer, "grad_scale", None) is None):
            return None
        devices = {p.device for g in optimizer.param_groups for p in g["params"]}
        if len(devices) != 1 or next(iter(devices)).type not in ("cpu", "cuda"):
            return None
        return cls(optimizer, devices.pop())

    def fold(self, tensors):
        """Fold one meta-step's loss and gradients into the flag and the count."""
        if any(t.device != self.device for t in tensors):
            if _any_non_finite(tensors):
                self.found.fill_(1.0)
        else:
            _fold_non_finite(tensors, self.found, self.one)
        self.count.add_(1).sub_(self.found)  # the flag stays set: counting stops there

    def release(self):
        if getattr(self.optimizer, "found_inf", None) is self.found:
            del self.optimizer.found_inf

    def diverged(self):
        return bool(self.found)

    def finite_steps(self):
        return int(self.count.item())


class RandomStartEarlyStopping(EarlyStopping):
    """EarlyStopping that counts the random start as epoch 0.

    Before training, the meta-validation score of the initial weights becomes
    the score to beat and those weights the ones to restore, so a meta-training
    run that only makes things worse (meta-overfitting) ends with the adapted
    model no worse, on meta-validation episodes, than its own random start.
    ``initial_score_`` holds that score and ``best_epoch_`` is 0 when it won.

    A run resumed from a checkpoint (skorch's ``LoadInitState``, which runs
    before this callback) starts from the loaded weights instead: they are the
    score to beat and the weights to restore, ``best_epoch_`` is then the number
    of epochs loaded when they win, and the patience starts afresh.
    """

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        _, dataset_valid = net.get_split_datasets(X, y)
        if dataset_valid is None:
            raise ValueError("RandomStartEarlyStopping needs meta-validation episodes.")
        self.best_epoch_ = len(net.history)  # 0, or the epochs of a loaded checkpoint
        self.diverged_epoch_ = None
        start = net.evaluate(dataset_valid)
        self.initial_score_ = start[self.monitor]
        self.initial_diverged_ = not (math.isfinite(start["valid_loss"])
                                      and math.isfinite(self.initial_score_))
        # a start whose adaptation diverges is beaten by any finite score
        self.dynamic_threshold_ = (self._calc_new_threshold(self.initial_score_)
                                   if not self.initial_diverged_ else
                                   (math.inf if self.lower_is_better else -math.inf))
        if self.load_best:
            self.best_model_weights_ = {
                k: v.detach().clone() for k, v in net.module_.state_dict().items()
            }

    def on_epoch_end(self, net, **kwargs):
        row = net.history[-1]
        self.checked_epoch_ = row["epoch"]
        if not (math.isfinite(row.get("valid_loss", 0.0)) and math.isfinite(row[self.monitor])):
            # the held-out tasks' adaptation blew up: stop here, keep the best so far
            self.diverged_epoch_ = row["epoch"]
            raise KeyboardInterrupt
        super().on_epoch_end(net, **kwargs)

    def on_train_end(self, net, **kwargs):
        # Training interrupted after an epoch was scored but before this callback
        # checked it (Ctrl-C, or an earlier callback raising): check it now, so the
        # weights kept are the best of every scored epoch.
        last = net.history[-1] if len(net.history) else {}
        if (last.get("epoch") != getattr(self, "checked_epoch_", None)
                and self.monitor in last and self._is_score_improved(last[self.monitor])):
            self.best_epoch_ = last["epoch"]
            self.best_model_weights_ = None  # the current weights are the best
        super().on_train_end(net, **kwargs)


class AcceleratedMetaNet(AccelerateMixin, MetaNet):
    """:class:`MetaNet` with skorch's ``AccelerateMixin`` (Hugging Face accelerate).

    The meta-step is MetaNet's (the functional core, not skorch's forward pass);
    accelerate does the backward (mixed precision, gradient scaling), the
    optimizer and the device. The network is not wrapped for distributed data
    parallel: the meta-step calls it through ``functional_call``, past a
    wrapper's forward, so the meta-gradients are averaged across processes
    explicitly, and each process draws its own training episodes. Defined at
    module level, so an accelerated fit pickles; skorch's mixin imports
    accelerate only when it is used, so accelerate stays optional.
    """

    train_step_single = MetaNet.train_step_single
    compiled_gradients = False  # accelerate's backward scales and casts: compile the forward

    @property
    def data_device(self):
        return self.accelerator.device

    def backward(self, loss):
        self.accelerator.backward(loss)

    def sync_gradients(self):
        if self.accelerator.num_processes > 1:
            for p in self.module_.parameters():
                if p.grad is not None:
                    p.grad = self.accelerator.reduce(p.grad, reduction="mean")

    def get_iterator(self, dataset, training=False):
        # episodes are drawn per process, not sharded from one loader
        return NeuralNet.get_iterator(self, dataset, training=training)

    def on_epoch_begin(self, net, dataset_train=None, **kwargs):
        super().on_epoch_begin(net, dataset_train=dataset_train, **kwargs)
        if isinstance(dataset_train, EpisodeDataset):
            dataset_train.process = self.accelerator.process_index

    def _initialize_accelerator(self):
        if self._wrapped_with_accelerator:
            return self
        # neither the network nor the (parameter-free) loss is wrapped for DDP
        self.module_.to(self.accelerator.device)
        self.optimizer_ = self.accelerator.prepare(self.optimizer_)
        self._wrapped_with_accelerator = True
        return self


def build_net(learner, algorithm, *, task, n_way, meta_lr, max_epochs, meta_batch_size,
              callbacks, verbose, device, accelerator, patience, valid_ds=None,
              optimizer_params=None, compile_options=None):
    """The skorch net of a fit around ``learner``, and the algorithm.

    ``valid_ds`` (meta-validation episodes) adds early stopping that counts the
    random start as epoch 0. ``optimizer_params`` (the estimator's
    ``optimizer__<name>`` parameters, prefix removed) reach the outer optimizer
    through skorch's own ``optimizer__`` routing, over the defaults here.
    ``compile_options`` (None, or ``torch.compile``'s keyword arguments) compiles
    the meta-loss (:class:`MetaNet`'s ``meta_compile``). ``fit``
    trains the net; :func:`sklmeta._base.restore_fitted` loads saved weights into it.
    """
    # The progress bar first: a callback that stops training (early stopping)
    # raises at epoch end, and a bar not yet closed would leak into the next fit.
    cbs = [("progress_bar", ProgressBar())] if verbose else []
    classification = task == "classification"
    if valid_ds is not None and classification:
        cbs.append(("valid_acc", PassthroughScoring(
            "valid_acc", lower_is_better=False, on_train=False)))
    cbs += list(copy.deepcopy(callbacks or []))
    if valid_ds is not None:
        cbs.append(("random_start_early_stopping", RandomStartEarlyStopping(
            monitor="valid_acc" if classification else "valid_loss",
            lower_is_better=not classification, patience=patience,
            threshold=0.0, threshold_mode="abs", load_best=True,
            sink=print if verbose else noop,
        )))
    if accelerator is None:
        net_class, place = MetaNet, dict(device=device)
        device = torch.device(device)
    else:  # accelerate places the parameters; device is not used
        net_class, place = AcceleratedMetaNet, dict(device=None, accelerator=accelerator)
        device = accelerator.device
    # one fused kernel for all parameters: ~6x cheaper than Adam's default on CPU
    optimizer = {"fused": device.type in ("cpu", "cuda"), **(optimizer_params or {})}
    net = net_class(
        learner,
        criterion=EpisodeLoss, criterion__task=task, criterion__n_classes=n_way,
        optimizer=algorithm.optimizer, lr=meta_lr, max_epochs=max_epochs,
        **{f"optimizer__{k}": v for k, v in optimizer.items()},
        batch_size=meta_batch_size,
        iterator_train=EpisodeLoader, iterator_valid=EpisodeLoader,
        train_split=predefined_split(valid_ds) if valid_ds is not None else None,
        callbacks=cbs, verbose=verbose, algorithm=algorithm, meta_compile=compile_options,
        **place,
    )
    return net, algorithm
