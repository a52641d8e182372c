"""Running the scenarios: meta-train, score every method on the same episodes, report.

This is the module that imports torch (through sklmeta's estimators); the
command line imports it only once its options are parsed. It uses sklmeta's
public API only (the estimator classes by name, ``TaskSplitter``,
:func:`sklmeta.model_selection.compare` through its public signature).
"""

import argparse
import signal
import threading
import time
import warnings

import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

import sklmeta
from sklmeta.model_selection import compare

from . import report
from .scenarios import ALGORITHMS, FINE_TUNED, RANDOM_START, SCENARIOS


def options(name, *, shots=None, n_way=None, epochs=None, episodes=100, seed=0, device="cpu",
            algorithms=tuple(ALGORITHMS), verbose=True, **other):
    """The options of one scenario: those given, else the scenario's defaults.

    ``verbose`` prints skorch's epoch tables and every cell as it is scored
    (the command line); ``False`` prints nothing but what the caller prints.
    """
    s = SCENARIOS[name]
    return argparse.Namespace(
        **other, name=name, shots=sorted(set(shots or s.shots)),
        n_way=n_way or (s.n_way[0] if s.n_way else None), epochs=epochs or s.epochs,
        episodes=episodes, seed=seed, device=device,
        algorithms=list(dict.fromkeys(algorithms)), verbose=verbose)


def fit(estimator, *fit_args):
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


def final_step(estimator):
    return estimator[-1] if hasattr(estimator, "steps") else estimator


def held_out(meta):
    """What early stopping held out, from the public ``validation_split_``."""
    split = meta.validation_split_
    if split is None:
        return "No early stopping."
    held = split["held_out"]
    which = f"{split['unit']} {held}" if len(held) <= 6 else f"{len(held)} {split['unit']}"
    return (f"Early stopping held out {which} for meta-validation and meta-trained on the "
            f"other {split['n_kept']}.")


def learner(scenario, opts, key, **overrides):
    """Algorithm ``key`` set up for the scenario, unfitted; None if it has no such task.

    Every algorithm gets the scenario's network, meta-training episodes and
    ``params``; only those that ``take_inner`` get its inner loop (Reptile's many
    small steps and ProtoNet's prototypes keep their own defaults).
    ``overrides`` replace any parameter. In a StandardScaler pipeline if ``scaled``.
    """
    algorithm = ALGORITHMS[key]
    cls = algorithm.classifier if scenario.task == "classification" else algorithm.regressor
    if cls is None:
        return None
    splitter = sklmeta.TaskSplitter(n_way=opts.n_way, k_shot=scenario.train_shots,
                                    n_query=scenario.n_query, n_tasks=scenario.train_episodes,
                                    random_state=opts.seed)
    params = dict(task_splitter=splitter, hidden_layer_sizes=scenario.hidden,
                  device=opts.device, random_state=opts.seed, max_epochs=opts.epochs,
                  verbose=int(opts.verbose), **scenario.params,
                  **(scenario.inner if algorithm.takes_inner else {}))
    estimator = getattr(sklmeta, cls)(**{**params, **overrides})
    return make_pipeline(StandardScaler(), estimator) if scenario.scaled else estimator


def meta_train(estimator, setting, opts):
    """Fit (meta-train) on the setting's training data; the meta-estimator and the seconds."""
    meta = final_step(estimator)
    if opts.verbose:
        print(f"\nMeta-training {type(meta).__name__} for {setting.label} (skorch's epoch table "
              "and progress bar follow):", flush=True)
    start = time.perf_counter()
    fit(estimator, *setting.train)
    seconds = time.perf_counter() - start
    if opts.verbose:
        print(f"Meta-trained {len(meta.history_)} epochs in {seconds:.0f} s; kept epoch "
              f"{meta.best_epoch_} (0 is the random start). {held_out(meta)}", flush=True)
    return meta, seconds


def build(scenario, opts, setting):
    """Every method of the setting's table, fitted where it must be, and its role.

    Returns ``methods`` (row -> estimator), ``roles`` (row -> report role) and
    ``fits`` (meta-learner row -> (meta-estimator, seconds of meta-training)).
    """
    methods, roles, fits = {}, {}, {}
    for key in opts.algorithms:
        estimator = learner(scenario, opts, key)
        if estimator is not None:
            row = ALGORITHMS[key].row
            fits[row] = meta_train(estimator, setting, opts)
            methods[row], roles[row] = estimator, report.META
    if scenario.random_start:
        methods[RANDOM_START] = fit(learner(scenario, opts, "maml", max_epochs=0, verbose=0),
                                    *setting.train)
        roles[RANDOM_START] = report.REFERENCE
    for row, estimator in scenario.baselines(opts, setting, fit).items():
        methods[row], roles[row] = estimator, report.BASELINE
    if getattr(opts, "automl", False):
        row, auto = automl(scenario, opts, setting, methods, roles)
        methods[row], roles[row] = auto, report.REFERENCE
    return methods, roles, fits


def automl(scenario, opts, setting, methods, roles):
    """AutoMeta over the table's meta-learners (unfitted again) and baselines; its row.

    The pretrained baseline is left out: it was pretrained on all the training tasks,
    the held-out ones included, so choosing it on them would not be honest.
    """
    candidates = {row: learner(scenario, opts, key) for key in opts.algorithms
                  if (row := ALGORITHMS[key].row) in methods}
    candidates.update({row: clone(est) for row, est in methods.items()
                       if roles[row] == report.BASELINE and row != FINE_TUNED})
    cls = sklmeta.AutoMetaClassifier if scenario.task == "classification" else (
        sklmeta.AutoMetaRegressor)
    splitter = sklmeta.TaskSplitter(n_way=opts.n_way, k_shot=scenario.train_shots,
                                    n_query=scenario.n_query, n_tasks=scenario.train_episodes,
                                    random_state=opts.seed)
    auto = cls(candidates, task_splitter=splitter, scoring=scenario.metric.scoring,
               n_episodes=opts.episodes, random_state=opts.seed)
    start = time.perf_counter()
    fit(auto, *setting.train)
    if opts.verbose:
        print(f"AutoMeta chose {auto.best_name_} in {time.perf_counter() - start:.0f} s "
              f"(held out {auto.validation_split_['unit']}):\n"
              f"{auto.leaderboard_[['mean', 'ci_low', 'ci_high', 'diff']].to_string()}",
              flush=True)
    return f"AutoMeta (pick: {auto.best_name_})", auto


def episodes(scenario, opts, k):
    """The test episodes at ``k`` shots: seeded, so every method sees the very same ones."""
    return sklmeta.TaskSplitter(n_way=opts.n_way, k_shot=k, n_query=scenario.n_query,
                                n_tasks=opts.episodes, random_state=opts.seed + 2)


def evaluate(panel, methods, scenario, opts, setting):
    """Score every method at every shot count into ``panel``; one ``compare`` call per cell."""
    for k in opts.shots:
        cv = episodes(scenario, opts, k)
        for name, est in methods.items():
            summary, scores = compare({name: est}, setting.X, setting.y, cv=cv,
                                      groups=setting.groups, scoring=scenario.metric.scoring,
                                      return_scores=True)
            panel.add(name, k, scores["score"].to_numpy())
            if opts.verbose:
                print(f"  {k:>3}-shot  {name:<38} {panel.cell(name, k):<24} "
                      f"({summary.loc[name, 'seconds']:.1f} s)", flush=True)
    return panel


def run_scenario(opts, panels):
    """Run scenario ``opts.name``, appending each panel to ``panels`` as it starts."""
    scenario = SCENARIOS[opts.name]
    for setting in scenario.data(opts):
        methods, roles, fits = build(scenario, opts, setting)
        meta = list(fits.values())[-1][0] if fits else None
        panel = report.Panel(setting.label, setting.title, scenario.metric, roles,
                             chance=setting.chance)
        panels.append(panel)
        print(f"\nScoring on {opts.episodes} test episodes per shot count ({panel.title}):",
              flush=True)
        evaluate(panel, methods, scenario, opts, setting)
        panel.notes.append(scenario.notes(opts, setting, meta))
        print("\n" + panel.text() + "\n", flush=True)
        panel.done = True


def run_all(args, default=False):
    """Run ``args.scenario`` in turn; the exit status (0, or 130 on Ctrl-C)."""
    threads = args.threads or 1
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    start = time.perf_counter()
    print(f"# sklmeta {sklmeta.__version__}: few-shot comparison"
          + (" (no arguments: the default scenarios)" if default else ""))
    print(f"\nScenarios: {', '.join(args.scenario)}. Seed {args.seed}, {args.episodes} test "
          f"episodes per shot count, {threads} torch thread(s), meta-learners on {args.device}; "
          f"results in {args.out}. Every method of a table sees the very same episodes; "
          "figures are mean [95% Student-t CI, clipped to the metric's range] over episodes; "
          "a verdict names a winner only when the CI of the paired difference excludes zero.",
          flush=True)
    name, panels = None, []
    try:
        with threadpool_limits(limits=threads), warnings.catch_warnings():
            # The baselines' own warnings (lbfgs iterations) do not change the figures.
            warnings.simplefilter("ignore", category=ConvergenceWarning)
            for name in args.scenario:
                print(f"\n## {name}", flush=True)
                panels = []
                run_scenario(options(**{**vars(args), "name": name}), panels)
                report.save(name, panels, args.out)
                panels = []
    except KeyboardInterrupt:
        print("\n\nInterrupted.", flush=True)
        if panels and not panels[-1].done:
            print("\n" + panels[-1].text(interrupted=True) + "\n", flush=True)
        report.save(name, panels, args.out)
        return 130
    finally:
        torch.set_num_threads(previous_threads)
    print(f"Total wall time: {time.perf_counter() - start:.0f} s")
    return 0
