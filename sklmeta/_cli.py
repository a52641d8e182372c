"""``python -m sklmeta`` (and the ``sklmeta`` script): the meta-learners against the baselines.

Each scenario meta-trains the meta-learners (MAML, Meta-SGD, ANIL, Reptile and,
for classification, ProtoNet) on training tasks, then scores them and the
estimators a practitioner would fit on the same support sets on identical
test episodes (:func:`sklmeta.model_selection.compare`). It prints a markdown
table (mean and 95% CI per method and shot count) and writes, per scenario, a
CSV of every episode's score and a PNG plot.
"""

import argparse
import signal
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from . import __version__
from .baselines import FineTunedRegressor, SkorchMLPClassifier, SkorchMLPRegressor
from .datasets import make_classification_tasks, make_sinusoid_tasks
from .estimators import (
    ANILClassifier,
    ANILRegressor,
    MAMLClassifier,
    MAMLRegressor,
    MetaSGDClassifier,
    MetaSGDRegressor,
    ProtoNetClassifier,
    ReptileClassifier,
    ReptileRegressor,
)
from .model_selection import compare, mean_ci
from .tasks import TaskSplitter, stack_tasks

MAML = "MAML (meta-trained)"
RANDOM_START = "MAML random start (max_epochs=0)"
# --algorithms: key -> (table row, classifier, regressor, takes the scenario's inner loop)
ALGORITHMS = {
    "maml": (MAML, MAMLClassifier, MAMLRegressor, True),
    "metasgd": ("Meta-SGD", MetaSGDClassifier, MetaSGDRegressor, True),
    "anil": ("ANIL", ANILClassifier, ANILRegressor, True),
    "reptile": ("Reptile", ReptileClassifier, ReptileRegressor, False),
    "protonet": ("ProtoNet", ProtoNetClassifier, None, False),
}
META_ROWS = {row for row, *_ in ALGORITHMS.values()} | {RANDOM_START}
MLP = "MLP from scratch (skorch)"
N_QUERY = 15  # query points per class in classification episodes
COLUMNS = ["scenario", "shots", "method", "episode", "score"]  # of <scenario>.csv


# ------------------------------------------------------------------ argument types
def _int_at_least(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer; got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}; got {value}")
        return value

    return parse


positive_int = _int_at_least(1)


# ------------------------------------------------------------------------ results
class _Panel:
    """One comparison: methods x shot counts, scored on the same test episodes.

    ``splitter(k)`` gives the test episodes for ``k`` shots (seeded, so every
    method sees the very same ones).
    """

    def __init__(self, label, title, methods, X, y, *, splitter, groups=None, scoring=None,
                 chance=None):
        self.label, self.title, self.methods = label, title, methods
        self.X, self.y, self.groups = X, y, groups
        self.splitter, self.scoring, self.chance = splitter, scoring, chance
        self.regression = scoring == "neg_mean_squared_error"
        self.summary = {}  # (method, k) -> (mean, ci_low, ci_high) of the score
        self.scores = {}  # (method, k) -> every episode's score
        self.shots = []
        self.notes = []
        self.done = False  # all cells scored and the table printed

    def evaluate(self, shots):
        """Score every method at every shot count; one ``compare`` call per cell."""
        for k in shots:
            cv = self.splitter(k)
            self.shots.append(k)
            for name, est in self.methods.items():
                summary, scores = compare({name: est}, self.X, self.y, cv=cv,
                                          groups=self.groups, scoring=self.scoring,
                                          return_scores=True)
                row = summary.loc[name]
                self.summary[name, k] = (row["mean"], row["ci_low"], row["ci_high"])
                self.scores[name, k] = scores["score"].to_numpy()
                print(f"  {k:>3}-shot  {name:<38} {self.cell(name, k):<24} "
                      f"({row['seconds']:.1f} s)", flush=True)

    def cell(self, name, k):
        if (name, k) not in self.summary:
            return "not run (interrupted)"
        m, lo, hi = self.summary[name, k]
        if self.regression:  # the scorer is the negated MSE: flip it, and the interval
            return f"{-m:.3f} [{-hi:.3f}, {-lo:.3f}]"
        return f"{100 * m:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"

    def table(self):
        metric = "query MSE (lower is better)" if self.regression else "query accuracy"
        rows = [n for n in self.methods if any((n, k) in self.summary for k in self.shots)]
        lines = ["| method | " + " | ".join(f"{k}-shot {metric}" for k in self.shots) + " |",
                 "|---|" + "---|" * len(self.shots)]
        lines += [f"| {n} | " + " | ".join(self.cell(n, k) for k in self.shots) + " |"
                  for n in rows]
        return "\n".join(lines)

    def verdicts(self):
        """Per shot count: the best meta-learner against the best baseline, paired."""
        lines = []
        learners = [n for n in self.methods if n in META_ROWS and n != RANDOM_START]
        baselines = [n for n in self.methods if n not in META_ROWS]
        for k in self.shots:
            done = [n for n in baselines if (n, k) in self.scores]
            meta = [n for n in learners if (n, k) in self.scores]
            if not meta or not done:
                continue
            best = max(done, key=lambda n: self.summary[n, k][0])
            learner = max(meta, key=lambda n: self.summary[n, k][0])
            m, lo, hi = mean_ci(self.scores[learner, k] - self.scores[best, k])
            if self.regression:
                diff = f"{-m:+.3f} MSE [{-hi:+.3f}, {-lo:+.3f}]"
            else:
                diff = f"{100 * m:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}]"
            what = (f"the best meta-learner's MSE ({learner}) minus the best baseline's "
                    f"({best})" if self.regression else
                    f"the best meta-learner ({learner}) minus the best baseline ({best})")
            lines.append(f"- {k}-shot: {what}, paired over the same "
                         f"{len(self.scores[best, k])} episodes: {diff}")
        return lines

    def frames(self):
        """Every episode's score, one frame per cell done, with the columns ``COLUMNS``."""
        return [pd.DataFrame({"scenario": self.label, "shots": k, "method": name,
                              "episode": np.arange(len(s)), "score": s})
                for (name, k), s in self.scores.items()]


class _Run:
    """The panels of one scenario, reported as they complete."""

    def __init__(self, name, args):
        self.name, self.args, self.panels = name, args, []

    def panel(self, *args, **kwargs):
        panel = _Panel(*args, **kwargs)
        self.panels.append(panel)
        return panel

    def evaluate(self, panel, notes=()):
        print(f"\nScoring on {self.args.episodes} test episodes per shot count "
              f"({panel.title}):", flush=True)
        panel.evaluate(self.args.shots)
        panel.notes.extend(notes)
        self.print_panel(panel)
        panel.done = True

    def print_panel(self, panel, interrupted=False):
        print(f"\n### {panel.label}: {panel.title}"
              + (" (INTERRUPTED: partial results)" if interrupted else "") + "\n")
        print(panel.table())
        verdicts = panel.verdicts()
        if verdicts:
            print("\n" + "\n".join(verdicts))
        if panel.notes and not interrupted:
            print("\n" + "\n".join(panel.notes))
        print(flush=True)

    def save(self):
        """Write ``<scenario>.csv`` (every episode's score) and ``<scenario>.png``."""
        if not self.panels:
            return
        out = Path(self.args.out)
        out.mkdir(parents=True, exist_ok=True)
        csv = out / f"{self.name}.csv"
        frames = [f for p in self.panels for f in p.frames()]
        scores = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
        scores.to_csv(csv, index=False)
        metric = ("negated MSE, scikit-learn's neg_mean_squared_error"
                  if any(p.regression for p in self.panels) else "accuracy")
        print(f"Every episode's score ({metric}): {csv}")
        png = _plot(self.panels, out / f"{self.name}.png")
        if png is not None:
            print(f"Plot: {png}")
        print(flush=True)


def _plot(panels, path):
    """Score against shots, one line per method with its 95% CI band; None without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        print("matplotlib is not installed, so no plot was written "
              "(pip install 'sklmeta[plot]' to get one).")
        return None
    # The Agg canvas directly: no pyplot, so no global backend or figure state is touched.
    fig = Figure(figsize=(5.5 * len(panels), 4.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels):
        shots = panel.shots
        for i, method in enumerate(panel.methods):
            ks = [k for k in shots if (method, k) in panel.summary]
            if not ks:
                continue
            m, lo, hi = (np.array([panel.summary[method, k][j] for k in ks]) for j in range(3))
            if panel.regression:
                m, lo, hi = -m, -hi, -lo
            else:
                m, lo, hi = 100 * m, 100 * lo, 100 * hi
            ls = "--" if method == RANDOM_START else "-"
            ax.plot(ks, m, marker="o", ls=ls, color=f"C{i}", label=method)
            ax.fill_between(ks, lo, hi, color=f"C{i}", alpha=0.2)
        if panel.chance is not None:
            ax.axhline(100 * panel.chance, color="grey", ls=":", label="chance")
        ax.set_xscale("log")
        ax.set_xticks(shots, [str(k) for k in shots])
        ax.minorticks_off()
        ax.set_xlabel("shots" + ("" if panel.regression else " per class"))
        ax.set_ylabel("query MSE (lower is better)" if panel.regression
                      else "query accuracy (%)")
        ax.set_title(f"{panel.label}\n{panel.title}", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


# ---------------------------------------------------------------------- scenarios
def _classifier_baselines(seed):
    return {
        "RandomForest": RandomForestClassifier(random_state=seed),
        "1-NN": KNeighborsClassifier(n_neighbors=1),
        "LogisticRegression": LogisticRegression(),
        # 50 full-batch Adam steps at lr 0.01 fit 2-50 samples; more did not score better.
        MLP: SkorchMLPClassifier(hidden_layer_sizes=(40, 40), lr=0.01, max_epochs=50,
                                 random_state=seed),
    }


def _fit(estimator, *fit_args):
    """``estimator.fit(*fit_args)``, except that Ctrl-C ends the run.

    skorch ends training quietly on KeyboardInterrupt and returns the half-trained
    net; its rows would look like any others, so a Ctrl-C during fit is raised again.
    """
    seen = []

    def handler(signum, frame):
        seen.append(signum)
        raise KeyboardInterrupt

    # Only over Python's own handler, and only where signals can be handled at all.
    install = (threading.current_thread() is threading.main_thread()
               and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    if install:
        signal.signal(signal.SIGINT, handler)
    try:
        estimator.fit(*fit_args)
    finally:
        if install:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    if seen:
        raise KeyboardInterrupt
    return estimator


def _meta_train(name, estimator, *fit_args):
    """Fit (meta-train) with skorch's progress bar; return the meta-estimator step."""
    print(f"\nMeta-training {name} (skorch's epoch table and progress bar follow):", flush=True)
    start = time.perf_counter()
    _fit(estimator, *fit_args)
    seconds = time.perf_counter() - start
    meta = estimator[-1] if hasattr(estimator, "steps") else estimator
    print(f"Meta-trained {len(meta.history_)} epochs in {seconds:.0f} s; kept epoch "
          f"{meta.best_epoch_} (0 is the random start). {_held_out(meta)}", flush=True)
    return meta


def _meta_learners(run, task, what, params, fit_args, inner=None, wrap=None):
    """Meta-train every algorithm of ``--algorithms`` for ``task``; return {row: estimator}.

    ``params`` go to every algorithm; ``inner`` (the scenario's inner loop, tuned
    for MAML) only to MAML, Meta-SGD and ANIL: Reptile's many small steps and
    ProtoNet's prototypes keep their own defaults. ``wrap`` puts each in a pipeline.
    """
    learners, meta = {}, None
    for key in run.args.algorithms:
        row, classifier, regressor, takes_inner = ALGORITHMS[key]
        cls = classifier if task == "classification" else regressor
        if cls is None:
            continue
        estimator = cls(max_epochs=run.args.epochs, verbose=1,
                        **params, **(inner if takes_inner and inner else {}))
        estimator = wrap(estimator) if wrap is not None else estimator
        meta = _meta_train(f"{cls.__name__} {what}", estimator, *fit_args)
        learners[row] = estimator
    return learners, meta


def _held_out(meta):
    split = meta.validation_split_
    if split is None:
        return "No early stopping."
    held = split["held_out"]
    which = f"{split['unit']} {held}" if len(held) <= 6 else f"{len(held)} {split['unit']}"
    return (f"Early stopping held out {which} for meta-validation and meta-trained on the "
            f"other {split['n_kept']}.")


def _shared_structure(run):
    a = run.args
    n_train, n_test = 250, 60
    # One call: the informative columns depend on random_state, and the held-out tasks
    # must share them with the training tasks.
    tasks = make_classification_tasks(n_tasks=n_train + n_test, n_samples=100, n_features=40,
                                      n_informative=4, random_state=a.seed)
    splitter = TaskSplitter(n_way=2, k_shot=5, n_query=N_QUERY, n_tasks=320, random_state=a.seed)
    params = dict(task_splitter=splitter, hidden_layer_sizes=(40, 40), device=a.device,
                  random_state=a.seed)
    learners, _ = _meta_learners(run, "classification",
                                 f"on {n_train} tasks (2-way 5-shot episodes)", params,
                                 (tasks[:n_train],))
    start = MAMLClassifier(max_epochs=0, **params).fit(tasks[:n_train])
    X, y, groups = stack_tasks(tasks[n_train:])
    panel = run.panel(
        "shared-structure", f"2-way episodes of {n_test} held-out tasks",
        {**learners, RANDOM_START: start, **_classifier_baselines(a.seed)}, X, y, groups=groups,
        splitter=lambda k: TaskSplitter(n_way=2, k_shot=k, n_query=N_QUERY, n_tasks=a.episodes,
                                        random_state=a.seed + 2),
        chance=0.5,
    )
    run.evaluate(panel, [
        f"Every task labels points by a hyperplane in the same 4 of 40 features; a "
        f"meta-learner learns which from {n_train} training tasks, while a learner fit on a "
        "handful of examples cannot tell those 4 from the 36 noise features. This is where "
        "meta-learning wins."
    ])


def _digits(run):
    a = run.args
    X, y = load_digits(return_X_y=True)
    seen = y <= 5
    splitter = TaskSplitter(n_way=a.n_way, k_shot=5, n_query=N_QUERY, n_tasks=160,
                            random_state=a.seed)
    params = dict(task_splitter=splitter, hidden_layer_sizes=(64, 64), device=a.device,
                  random_state=a.seed)
    learners, meta = _meta_learners(
        run, "classification", f"on digits 0-5, after a StandardScaler ({a.n_way}-way 5-shot "
        "episodes)", params, (X[seen], y[seen]), inner=dict(inner_lr=0.4),
        wrap=lambda est: make_pipeline(StandardScaler(), est))
    start = make_pipeline(StandardScaler(), MAMLClassifier(max_epochs=0, inner_lr=0.4,
                                                           **params))
    start.fit(X[seen], y[seen])
    split = meta.validation_split_ if meta is not None else None
    kept = 6 if split is None else split["n_kept"]
    panel = run.panel(
        "digits", f"{a.n_way}-way episodes of the unseen digits 6-9",
        {**learners, RANDOM_START: start, **_classifier_baselines(a.seed)}, X[~seen], y[~seen],
        splitter=lambda k: TaskSplitter(n_way=a.n_way, k_shot=k, n_query=N_QUERY,
                                        n_tasks=a.episodes, random_state=a.seed + 2),
        chance=1 / a.n_way,
    )
    run.evaluate(panel, [
        f"Honest note: digits 0-5 are only 6 meta-training classes ({kept} left to meta-train "
        "on after early stopping's hold-out), too few for a meta-learner to beat nearest "
        "neighbours on raw pixels; on data like this, use the baselines."
    ])


_DATASETS = {"iris": load_iris, "wine": load_wine, "breast_cancer": load_breast_cancer}


def _cross_dataset(run):
    a = run.args
    data = {name: load(return_X_y=True) for name, load in _DATASETS.items()}
    width = max(X.shape[1] for X, _ in data.values())
    for test in _DATASETS:
        train = [n for n in _DATASETS if n != test]
        # sklmeta standardises each task dataset and zero-pads it to the widest, and adapts
        # to at most that width; zero columns make the widest the test dataset's too (a zero
        # column stays zero when standardised, exactly as sklmeta's own padding).
        tasks = [(np.pad(data[n][0], ((0, 0), (0, width - data[n][0].shape[1]))), data[n][1])
                 for n in train]
        splitter = TaskSplitter(n_way=2, k_shot=5, n_query=N_QUERY, n_tasks=160,
                                random_state=a.seed)
        params = dict(task_splitter=splitter, hidden_layer_sizes=(40, 40), standardize=True,
                      device=a.device, random_state=a.seed)
        learners, meta = _meta_learners(
            run, "classification", f"on the task datasets {train} (2-way 5-shot episodes)",
            params, (tasks,), inner=dict(inner_lr=0.4))
        start = MAMLClassifier(max_epochs=0, inner_lr=0.4, **params).fit(tasks)
        split = meta.validation_split_ if meta is not None else None
        kept = ("both" if split is None else
                " and ".join(train[i] for i in range(len(train))
                             if i not in split["held_out"]) + " only")
        X, y = data[test]
        panel = run.panel(
            f"cross-dataset:{test}", f"2-way episodes of {test}, meta-trained on "
            f"{' + '.join(train)}",
            {**learners, RANDOM_START: start, **_classifier_baselines(a.seed)}, X, y,
            splitter=lambda k: TaskSplitter(n_way=2, k_shot=k, n_query=N_QUERY,
                                            n_tasks=a.episodes, random_state=a.seed + 2),
            chance=0.5,
        )
        run.evaluate(panel, [
            f"sklmeta standardises each support set and zero-pads it to {width} features (at 1 "
            "shot, 2 points: every feature becomes -1 or +1); the baselines see the raw "
            f"features. Two task datasets are far too few to meta-learn from (early stopping "
            f"kept {kept} for meta-training): expect the baselines to win."
        ])


def _sinusoid(run):
    a = run.args
    n_query = 10
    train = make_sinusoid_tasks(n_tasks=1000, n_samples=50, random_state=a.seed)
    test = make_sinusoid_tasks(n_tasks=100, n_samples=max(50, max(a.shots) + n_query),
                               random_state=a.seed + 1)
    # The paper's protocol: MLP (40, 40), inner lr 0.01, 1 inner step when meta-training,
    # 10 when adapting; meta-trained once on 10-shot episodes.
    splitter = TaskSplitter(k_shot=10, n_query=n_query, n_tasks=320, random_state=a.seed)
    params = dict(task_splitter=splitter, hidden_layer_sizes=(40, 40), meta_batch_size=16,
                  device=a.device, random_state=a.seed)
    inner = dict(inner_lr=0.01, inner_steps=1, adapt_steps=10, meta_lr=0.01)
    learners, _ = _meta_learners(run, "regression", "on 1000 sinusoids (10-shot episodes)",
                                 params, (train,), inner=inner)
    start = MAMLRegressor(max_epochs=0, **params, **inner).fit(train)

    # The paper's baseline: one network pretrained on all training tasks' pooled data,
    # fine-tuned on each support set with as many SGD steps as MAML adapts with, at a
    # step size tuned on training-task episodes.
    X_pool, y_pool, g_pool = stack_tasks(train)
    pretrain_epochs = min(10, max(1, a.epochs // 4))  # its loss is flat after about 6
    print(f"\nPretraining the baseline network on the pooled {len(y_pool)} points of the "
          f"training tasks ({pretrain_epochs} epochs):", flush=True)
    pretrained = _fit(SkorchMLPRegressor(hidden_layer_sizes=(40, 40), lr=1e-3,
                                         max_epochs=pretrain_epochs, batch_size=256, verbose=1,
                                         random_state=a.seed), X_pool, y_pool)
    search = GridSearchCV(
        FineTunedRegressor(pretrained.module_, n_steps=10), {"lr": [0.001, 0.003, 0.01]},
        scoring="neg_mean_squared_error", refit=False,
        cv=TaskSplitter(k_shot=10, n_query=n_query, n_tasks=50, random_state=a.seed + 3),
    ).fit(X_pool, y_pool, groups=g_pool)
    lr = search.best_params_["lr"]
    print(f"Fine-tuning step size {lr} (best of {search.param_grid['lr']} on 50 episodes of "
          "training tasks).", flush=True)

    X, y, groups = stack_tasks(test)
    panel = run.panel(
        "sinusoid", "episodes of 100 fresh sinusoids",
        {**learners, RANDOM_START: start,
         "pretrained + fine-tuned (10 SGD steps)": FineTunedRegressor(
             pretrained.module_, lr=lr, n_steps=10),
         MLP: SkorchMLPRegressor(hidden_layer_sizes=(40, 40), lr=0.01, max_epochs=100,
                                 random_state=a.seed)},
        X, y, groups=groups, scoring="neg_mean_squared_error",
        splitter=lambda k: TaskSplitter(k_shot=k, n_query=n_query, n_tasks=a.episodes,
                                        random_state=a.seed + 2),
    )
    run.evaluate(panel, [
        "y = A sin(x - phi), A in [0.1, 5], phi in [0, pi], x in [-5, 5]; query MSE on 10 "
        "points. MAML, its random start, Meta-SGD (from learned rates) and ANIL adapt with 10 "
        "steps of lr 0.01, Reptile with its own 5. Predicting 0 everywhere scores about 4.2 "
        "on average."
    ])


@dataclass(frozen=True)
class _Scenario:
    run: Callable  # the runner, called with a _Run
    help: str
    shots: tuple  # default shot counts
    epochs: int  # default meta-training epochs (max_epochs; early stopping may stop sooner)
    n_way: tuple = ()  # allowed n_way, the first the default; () for regression
    max_shots: int = 35


SCENARIOS = {
    "shared-structure": _Scenario(
        _shared_structure, "binary tasks sharing 4 informative features of 40 "
        "(make_classification_tasks); meta-learning wins", (1, 5), 60, (2,)),
    "digits": _Scenario(
        _digits, "meta-train on digits 0-5, test on 6-9; too few classes for meta-learning "
        "to win", (1, 5), 40, (3, 2, 4), max_shots=150),
    "cross-dataset": _Scenario(
        _cross_dataset, "meta-train on two of iris, wine, breast_cancer, test on the third "
        "(each rotation)", (1, 5), 40, (2,), max_shots=30),
    "sinusoid": _Scenario(
        _sinusoid, "the MAML paper's sinusoid regression; MSE, with the pretrained + "
        "fine-tuned baseline", (5, 10), 40, max_shots=100),
}
DEFAULT_SCENARIOS = ("shared-structure", "digits")


# ---------------------------------------------------------------------------- main
def _build_parser():
    prog = "python -m sklmeta" if sys.argv[0].endswith("__main__.py") else "sklmeta"
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Few-shot learning with meta-learners against the baselines a "
                    "practitioner would fit on the same support sets, scored on identical "
                    "episodes. Without arguments: `compare` on the default scenarios "
                    f"({', '.join(DEFAULT_SCENARIOS)}), a few minutes on 2 CPU cores.",
    )
    parser.add_argument("--version", action="version", version=f"sklmeta {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    scenarios = "\n".join(
        textwrap.fill(f"{name:<17} {s.help}", 79, initial_indent="  ", subsequent_indent=" " * 20)
        for name, s in SCENARIOS.items())
    cmp = commands.add_parser(
        "compare", help="meta-train, then score the meta-learners and the baselines (the "
                        "default command)",
        description=textwrap.fill(
            "Meta-train the meta-learners on a scenario's training tasks, then score them, "
            "MAML's random start and the baselines on the same test episodes. Prints a "
            "markdown table (mean [95% CI] over episodes); writes <scenario>.csv (every "
            "episode's score) and <scenario>.png to --out.", 79),
        epilog=f"scenarios:\n{scenarios}\n\n" + textwrap.fill(
            "Ctrl-C stops the run: it prints the rows done, writes their scores and exits "
            "with status 130.", 79),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmp.add_argument("--scenario", nargs="+", choices=list(SCENARIOS),
                     default=list(DEFAULT_SCENARIOS), metavar="NAME",
                     help=f"one or more of: {', '.join(SCENARIOS)} "
                          f"(default: {' '.join(DEFAULT_SCENARIOS)})")
    cmp.add_argument("--algorithms", nargs="+", choices=list(ALGORITHMS),
                     default=list(ALGORITHMS), metavar="NAME",
                     help=f"meta-learners to train: {', '.join(ALGORITHMS)} (default: all; "
                          "protonet is for classification only)")
    cmp.add_argument("--shots", nargs="+", type=positive_int, metavar="K",
                     help="shot counts (support samples per class; per task for sinusoid) "
                          "(default: 1 5, sinusoid 5 10)")
    cmp.add_argument("--n-way", type=_int_at_least(2), metavar="N",
                     help="classes per episode (default: 3 for digits, 2 otherwise; "
                          "shared-structure and cross-dataset need 2)")
    cmp.add_argument("--epochs", type=positive_int, metavar="N",
                     help="meta-training budget, max_epochs (default: 60 shared-structure, "
                          "40 otherwise; early stopping may stop sooner). The sinusoid's "
                          "pretrained baseline gets a quarter of it, at most 10")
    cmp.add_argument("--episodes", type=_int_at_least(2), default=100, metavar="N",
                     help="test episodes per shot count (default: 100)")
    cmp.add_argument("--seed", type=_int_at_least(0), default=0, metavar="N",
                     help="seeds the tasks, networks and episodes (default: 0)")
    cmp.add_argument("--out", default="sklmeta-results", metavar="DIR",
                     help="output folder for the CSV and PNG files (default: ./sklmeta-results)")
    cmp.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                     help="torch device of the meta-learners (default: cpu; the baselines "
                          "run on the CPU)")
    cmp.add_argument("--threads", type=positive_int, metavar="N",
                     help="torch and BLAS threads (default: 1; the tensors are tiny and more "
                          "threads only add overhead)")
    return parser, cmp


def _check_args(parser, args):
    """Errors no argparse type can see; each names its option (exit status 2)."""
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("argument --device: CUDA is not available to torch here; use cpu")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        parser.error(f"argument --out: {args.out!r} exists and is not a folder")
    for name in args.scenario:
        s = SCENARIOS[name]
        if args.n_way is not None and args.n_way not in s.n_way:
            allowed = ("it is a regression scenario, without classes" if not s.n_way else
                       f"it takes {' or '.join(map(str, sorted(s.n_way)))}")
            parser.error(f"argument --n-way: {args.n_way} does not fit scenario {name}: "
                         f"{allowed}")
        if args.shots is not None and max(args.shots) > s.max_shots:
            parser.error(f"argument --shots: at most {s.max_shots} for scenario {name}; got "
                         f"{max(args.shots)}")


def _scenario_args(args, name):
    """The options of one scenario: the command line's, else the scenario's defaults."""
    s = SCENARIOS[name]
    return argparse.Namespace(**{
        **vars(args),
        "shots": sorted(set(args.shots or s.shots)),
        "n_way": args.n_way or (s.n_way[0] if s.n_way else None),
        "epochs": args.epochs or s.epochs,
    })


def main(argv=None):
    """Run the command line; return the exit status (0, 2 for bad options, 130 on Ctrl-C).

    Parameters
    ----------
    argv : list of str, default=None
        The arguments; None reads ``sys.argv[1:]``. Without a command, ``compare``
        is run, on the default scenarios when no arguments are given.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    default = not argv
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        argv = ["compare", *argv]
    parser, compare_parser = _build_parser()
    args = parser.parse_args(argv)
    args.scenario = list(dict.fromkeys(args.scenario))  # in order, once each
    args.algorithms = list(dict.fromkeys(args.algorithms))
    _check_args(compare_parser, args)

    threads = args.threads or 1
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    start = time.perf_counter()
    print(f"# sklmeta {__version__}: few-shot comparison"
          + (" (no arguments: the default scenarios)" if default else ""))
    print(f"\nScenarios: {', '.join(args.scenario)}. Seed {args.seed}, {args.episodes} test "
          f"episodes per shot count, {threads} torch thread(s), meta-learners on {args.device}; "
          f"results in {args.out}. Every method of a table sees the very same episodes; "
          "figures are mean [95% Student-t CI] over episodes.", flush=True)
    run = None
    try:
        with threadpool_limits(limits=threads), warnings.catch_warnings():
            # The baselines' own warnings (lbfgs iterations) do not change the figures.
            warnings.simplefilter("ignore", category=ConvergenceWarning)
            for name in args.scenario:
                print(f"\n## {name}", flush=True)
                run = _Run(name, _scenario_args(args, name))
                SCENARIOS[name].run(run)
                run.save()
                run = None
    except KeyboardInterrupt:
        print("\n\nInterrupted.", flush=True)
        if run is not None and run.panels:
            if not run.panels[-1].done:
                run.print_panel(run.panels[-1], interrupted=True)
            run.save()
        return 130
    finally:
        torch.set_num_threads(previous_threads)
    print(f"Total wall time: {time.perf_counter() - start:.0f} s")
    return 0
