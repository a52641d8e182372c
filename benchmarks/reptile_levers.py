"""ReptileClassifier's levers on the shared-structure family, one fit each.

The settings tried for issue 11 (Reptile 15 points over the baselines on the
shared-structure family): the meta-step budget, the outer step size
(``meta_lr``) and its linear annealing to zero (Nichol et al., 2018), the
meta-batch, the inner mini-batch, the adaptation steps, the network's widths
and its activation. Each row is one fit (seed 0) from the defaults sweep's
shared-structure family (``defaults_sweep.py``), scored on the same 200
episodes; the validation column is the meta-validation accuracy of every
fifth validation. A setting is a JSON object of ReptileClassifier parameters;
``"anneal": T`` adds a skorch ``LRScheduler`` that takes ``meta_lr`` linearly
to zero over ``T`` meta-steps.

    python benchmarks/reptile_levers.py                       # every lever, ~10 minutes on 2 cores
    python benchmarks/reptile_levers.py '{"activation": "relu"}' '{"meta_batch_size": 32}'
"""

import argparse
import json
import time
import warnings

import torch
from _machine import machine_line, versions_line  # benchmarks/: the script's own folder
from defaults_sweep import shared_structure
from skorch.callbacks import LRScheduler

import sklmeta
from sklmeta.model_selection import compare, mean_ci

RELU = {"activation": "relu"}  # the default before issue 11's last change
LEVERS = [
    {**RELU},
    {**RELU, "max_meta_steps": 8000},
    {**RELU, "max_meta_steps": 8000, "meta_lr": 1.0},
    {**RELU, "max_meta_steps": 8000, "meta_lr": 0.25},
    {**RELU, "max_meta_steps": 8000, "meta_batch_size": 32},
    {**RELU, "max_meta_steps": 8000, "meta_batch_size": 5},
    {**RELU, "max_meta_steps": 8000, "inner_batch_size": 5},
    {**RELU, "max_meta_steps": 8000, "inner_batch_size": 20},
    {**RELU, "max_meta_steps": 8000, "adapt_steps": 20},
    {**RELU, "max_meta_steps": 3000, "anneal": 3000},
    {**RELU, "max_meta_steps": 3000, "anneal": 3000, "meta_lr": 1.0},
    {**RELU, "max_meta_steps": 5000, "anneal": 5000, "meta_lr": 1.0},
    {**RELU, "max_meta_steps": 3000, "anneal": 3000, "meta_lr": 1.0, "meta_batch_size": 32},
    {**RELU, "max_meta_steps": 4000, "hidden_layer_sizes": [100, 100]},
    {**RELU, "max_meta_steps": 4000, "hidden_layer_sizes": [40]},
    {"activation": "tanh", "max_meta_steps": 4000},
]


def run(setting, seed=0):
    fit_args, train_splitter, (X, y, groups, test), _ = shared_structure(seed, False)
    episodes = list(test.split(X, y, groups))
    params = dict(setting)
    anneal = params.pop("anneal", None)
    if "hidden_layer_sizes" in params:
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    if anneal:
        params["callbacks"] = [("anneal", LRScheduler(
            policy="LambdaLR", lr_lambda=lambda step: max(0.0, 1 - step / anneal),
            step_every="batch"))]
    meta = sklmeta.ReptileClassifier(task_splitter=train_splitter, random_state=seed, **params)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meta.fit(*fit_args)
    seconds = time.perf_counter() - start
    _, scores = compare({"reptile": meta}, X, y, cv=episodes, return_scores=True)
    m, lo, hi = mean_ci(scores.score.to_numpy() * 100)
    valid = [h.get("valid_acc", float("nan")) * 100 for h in meta.history_]
    return m, lo, hi, seconds, meta.n_meta_steps_, meta.best_epoch_, valid[::5]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", nargs="*", help="JSON objects; default: every lever")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = [json.loads(s) for s in args.settings] or LEVERS
    print(f"- machine: {machine_line()}; {versions_line()}")
    print("- every row one fit, scored on the defaults sweep's 200 shared-structure "
          f"episodes (seed {args.seed}); mean [95% CI]\n")
    print("| setting | accuracy (%) | fit s | meta-steps | best epoch | valid acc, every 5th |\n"
          "|---|---|---|---|---|---|")
    for setting in settings:
        m, lo, hi, seconds, steps, best, valid = run(setting, args.seed)
        print(f"| `{json.dumps(setting)}` | {m:.2f} [{lo:.1f}, {hi:.1f}] | {seconds:.1f} | "
              f"{steps} | {best} | {' '.join(f'{v:.1f}' for v in valid)} |", flush=True)


if __name__ == "__main__":
    main()
