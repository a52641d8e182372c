"""Few-shot accuracy of MAML against ordinary estimators, as markdown tables.

Three of the command line's scenarios (``sklmeta/_cli/scenarios.py``: the same
data, networks, baselines, shots and metric as ``python -m sklmeta``), MAML
only, every method scored on the very same episodes
(:func:`sklmeta.model_selection.compare`), each figure a mean over episodes with
its 95% Student-t confidence interval (clipped to the metric's range), each
verdict computed from the paired scores:

1. sinusoid regression (the MAML paper's toy problem): meta-trained MAML against
   its random start, the pretrained + fine-tuned network and an MLP from scratch;
2. shared-structure classification (:func:`sklmeta.datasets.make_classification_tasks`):
   binary tasks whose boundaries share a 4-dimensional subspace of 40 features,
   the structure a meta-learner can exploit;
3. digits, unseen classes: meta-train on digits 0-5, adapt to 3-way episodes of
   digits 6-9; plus the scenario's extra, the meta-overfitting curve (MAML refit
   without early stopping at the epochs of ``Scenario.curve``).

Usage::

    python benchmarks/few_shot_accuracy.py            # full budget, a few minutes
    python benchmarks/few_shot_accuracy.py --quick    # smoke test, about a minute
    python benchmarks/few_shot_accuracy.py --seed 1   # another draw of data and episodes

The output is meant to be pasted into the README as is.
"""

import argparse
import shlex
import sys
import time
import warnings

import torch
from _machine import machine_line, versions_line  # benchmarks/: the script's own folder
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from sklmeta._cli import report, run
from sklmeta._cli.scenarios import MAML, SCENARIOS

# (scenario, heading), in the order printed
SECTIONS = [
    ("sinusoid", "## 1. Sinusoid regression"),
    ("shared-structure", "## 2. Shared-structure classification"),
    ("digits", "## 3. Digits, unseen classes"),
]

# Budgets. "full" is what the README reports (the scenarios' own epochs); "quick" only
# checks that the script runs. episodes: test episodes per shot count, by scenario.
BUDGETS = {
    "full": dict(epochs=None, episodes={"sinusoid": 200}, default_episodes=100, curve=None),
    "quick": dict(epochs=2, episodes={}, default_episodes=10, curve=(0, 1, 2)),
}


def timed_fit(estimator, *args):
    """``estimator.fit(*args)`` and the seconds it took."""
    start = time.perf_counter()
    estimator.fit(*args)
    return estimator, time.perf_counter() - start


def curve_refits(scenario, opts, setting, curve):
    """MAML refit without early stopping at each epoch count of ``curve`` (0: random start)."""
    refits, seconds = {}, 0.0
    for e in curve:
        est = run.learner(scenario, opts, "maml", max_epochs=e, early_stopping=False)
        refits[e], secs = timed_fit(est, *setting.train)
        seconds += secs
    return refits, seconds


def print_panel(panel, first="method"):
    print(panel.table(first))
    print()
    if panel.verdicts():
        print("\n".join(panel.verdicts()))
        print()


def section(name, heading, budget, seed):
    print(heading)
    print()
    scenario = SCENARIOS[name]
    opts = run.options(name, epochs=budget["epochs"], seed=seed, algorithms=["maml"],
                       episodes=budget["episodes"].get(name, budget["default_episodes"]),
                       verbose=False)
    curve = (budget["curve"] or scenario.curve) if scenario.curve else ()
    for setting in scenario.data(opts):
        methods, roles, fits = run.build(scenario, opts, setting)
        meta, secs = fits[MAML]
        if curve:
            refits, curve_secs = curve_refits(scenario, opts, setting, curve)
            last = f"MAML, early_stopping=False ({max(curve)} epochs)"
            methods = {MAML: methods.pop(MAML), last: refits[max(curve)], **methods}
            # a reference, as the random start: the verdict is on the early-stopped fit
            roles = {MAML: roles.pop(MAML), last: report.REFERENCE, **roles}
        panel = report.Panel(setting.label, setting.title, scenario.metric, roles,
                             chance=setting.chance)
        run.evaluate(panel, methods, scenario, opts, setting)
        print_panel(panel)
        inner = ", ".join(f"{k}={v}" for k, v in scenario.inner.items()) or "default inner loop"
        print(f"{setting.title}, {opts.episodes} episodes per shot count, {scenario.n_query} "
              f"query points{' per class' if scenario.n_way else ''}. "
              f"{scenario.notes(opts, setting, meta)} MAML: MLP {scenario.hidden}, "
              f"{inner}, meta-trained "
              f"{scenario.train_shots}-shot, {scenario.train_episodes} episodes per epoch, "
              f"{len(meta.history_)} of max {opts.epochs} epochs in {secs:.0f} s, "
              f"best_epoch_={meta.best_epoch_}. {run.held_out(meta)} The baselines are fit "
              "on each support set.")
        print()
        if curve:
            print_curve(scenario, opts, setting, refits, curve_secs, meta)


def print_curve(scenario, opts, setting, refits, seconds, meta):
    print("### Meta-overfitting curve")
    print()
    panel = report.Panel("curve", setting.title, scenario.metric,
                         {str(e): report.META for e in refits})
    run.evaluate(panel, {str(e): est for e, est in refits.items()}, scenario, opts, setting)
    print_panel(panel, first="meta-training epochs")
    trace = ", ".join(f"{100 * v:.1f}"
                      for v in [meta.initial_valid_score_, *meta.history_[:, "valid_acc"]])
    print(f"Each row refits MAML with max_epochs=e and early_stopping=False ({seconds:.0f} s "
          "for all); epoch 0 is the random start. With early_stopping='auto' its "
          f"{scenario.train_shots}-shot meta-validation accuracy by epoch (epoch 0 first) "
          f"was: {trace} (%).")
    print()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny budget: a smoke test, not numbers to report")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the tasks, the networks and the episodes (default 0)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch and BLAS/OpenMP threads (default 1: the networks and "
                             "support sets are tiny, so extra threads only add overhead)")
    args = parser.parse_args(argv)
    budget = BUDGETS["quick" if args.quick else "full"]

    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    print("# Few-shot accuracy benchmarks" + (" (--quick: smoke test only)" if args.quick else ""))
    print()
    print(f"- machine: {machine_line()} ({args.threads} thread(s) used)")
    print(f"- {versions_line()}")
    print(f"- command: `{shlex.join(['python'] + sys.argv)}`")
    print("- every figure: mean over episodes [95% Student-t confidence interval, clipped to "
          "the metric's range]; all methods of a table see the very same episodes; a verdict "
          "names a winner only when the interval of the paired difference excludes zero")
    print()
    sys.stdout.flush()
    with threadpool_limits(limits=args.threads), warnings.catch_warnings():
        # The baselines' own warnings (e.g. lbfgs iterations) do not change the figures.
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        for name, heading in SECTIONS:
            section_start = time.perf_counter()
            section(name, heading, budget, args.seed)
            print(f"_Section time: {time.perf_counter() - section_start:.0f} s._")
            print()
            sys.stdout.flush()
    print(f"Total wall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
