"""
Few-shot sinusoid regression (the MAML paper's toy problem)
===========================================================

Every task is a sine wave ``y = A sin(x - phi)`` with its own amplitude
``A ~ U[0.1, 5]`` and phase ``phi ~ U[0, pi]``, observed at ``x ~ U[-5, 5]``
(Finn, Abbeel and Levine, ICML 2017, section 5.1). A new task comes with only
``K = 5`` labelled points, far too few to fit a 2x40-unit MLP from scratch.

:class:`~sklmeta.MAMLRegressor` meta-trains the network's *initialisation* on
many such tasks so that one gradient step on the 5 support points lands on a
good fit. We compare it with the very same network adapted the very same way
from its random start (``max_epochs=0``).
"""

# %%
# Meta-training tasks
# -------------------
# 2000 training tasks of 50 points each. An episode draws one task and from it
# ``k_shot=10`` support and ``n_query=10`` query points (the paper's K=10); an
# epoch is ``n_tasks=1000`` episodes. ``fit`` holds out 20% of the tasks for
# meta-validation (early stopping).

import copy
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sklmeta import MAMLRegressor, TaskSplitter, stack_tasks  # noqa: E402
from sklmeta.datasets import make_sinusoid_tasks  # noqa: E402
from sklmeta.model_selection import compare  # noqa: E402

# ``SKLMETA_EXAMPLES_QUICK=1`` (the documentation's CI build) runs a reduced budget:
# fewer training tasks, episodes and epochs. Without it, the full run below.
QUICK = os.environ.get("SKLMETA_EXAMPLES_QUICK") == "1"
if QUICK:
    print("SKLMETA_EXAMPLES_QUICK=1: a reduced budget, below the full run's accuracy")

train_tasks = make_sinusoid_tasks(n_tasks=500 if QUICK else 2000, n_samples=50, random_state=0)
splitter = TaskSplitter(k_shot=10, n_query=10, n_tasks=500 if QUICK else 1000, random_state=0)

# %%
# Meta-training
# -------------
# The paper's network (two hidden layers of 40 ReLU units) and inner step size
# (``inner_lr=0.01``, one inner step). The paper runs 70,000 meta-steps of 25
# tasks; to stay within about a minute on a laptop CPU we run at most 60 epochs
# of 20 meta-batches of 50 tasks (1,200 meta-steps) with a larger outer step
# (``meta_lr=3e-3`` instead of ``1e-3``). The fit is therefore far from
# converged: expect a larger error than the paper reports.
#
# A network this small is overhead-bound: on a busy machine, running with
# ``OMP_NUM_THREADS=1`` can make meta-training several times faster.

params = dict(task_splitter=splitter, hidden_layer_sizes=(40, 40), inner_lr=0.01,
              meta_batch_size=50, meta_lr=3e-3, random_state=0)
meta = MAMLRegressor(max_epochs=15 if QUICK else 60, **params).fit(train_tasks)

# The same network, same initial weights (same ``random_state``), not meta-trained.
random_start = MAMLRegressor(max_epochs=0, **params).fit(train_tasks)

print(f"meta-trained for {len(meta.history_)} epochs, kept epoch {meta.best_epoch_}; "
      f"meta-validation MSE {meta.initial_valid_score_:.2f} (random start) -> "
      f"{min(meta.history_[:, 'valid_loss']):.2f}")

# %%
# Few-shot test error on fresh tasks
# ----------------------------------
# 200 new tasks (a different ``random_state``), stacked into one ``X, y`` with
# ``groups`` saying which rows belong to which task. Each of the 200 episodes
# picks one task at random (with replacement, so some tasks are drawn more
# than once and others not at all), adapts on ``K = 5`` of its points and is
# scored on 50 others.
# :func:`~sklmeta.model_selection.compare` gives both models the same episodes.
# Both adapt with ``adapt_steps`` inner steps, which defaults to ``inner_steps``
# (one step, as in meta-training). The paper also reports 10 steps at test
# time: ``adapt_steps`` is read when adapting, so a copy with
# ``set_params(adapt_steps=10)`` adapts the same meta-learned initialisation
# with 10 steps, no refit needed.

n_test, k, n_query = 40 if QUICK else 200, 5, 50
test_tasks = make_sinusoid_tasks(n_tasks=n_test, n_samples=k + n_query, random_state=1)
X_test, y_test, groups = stack_tasks(test_tasks)
test_splitter = TaskSplitter(k_shot=k, n_query=n_query, n_tasks=n_test, random_state=2)

ten_steps = {name: copy.deepcopy(est).set_params(adapt_steps=10)
             for name, est in [("meta-trained", meta), ("random start", random_start)]}
table = compare({"MAML (meta-trained), 1 step": meta,
                 "MAML (meta-trained), 10 steps": ten_steps["meta-trained"],
                 "same net, random start, 1 step": random_start,
                 "same net, random start, 10 steps": ten_steps["random start"]},
                X_test, y_test, cv=test_splitter, groups=groups,
                scoring="neg_mean_squared_error")
# The scorer is the negated MSE; flip it back (and the interval with it).
mse = -table[["mean", "ci_high", "ci_low"]]
mse.columns = ["query MSE", "ci_low", "ci_high"]


def markdown(df, floatfmt=".3f"):
    """A small markdown table (no dependency on ``tabulate``)."""
    header = "| | " + " | ".join(df.columns) + " |"
    rule = "|---|" + "---:|" * len(df.columns)
    rows = [f"| {name} | " + " | ".join(format(v, floatfmt) for v in row) + " |"
            for name, row in zip(df.index, df.to_numpy())]
    return "\n".join([header, rule, *rows])


print(f"\nQuery MSE after adapting on K={k} points ({n_test} episodes, 95% CI):\n")
print(markdown(mse))

# %%
# Plot
# ----
# Three fresh tasks: the true sine, the 5 support points, and the two adapted
# networks. The last panel shows meta-validation MSE during meta-training
# (epoch 0 is the random start).

shown, amplitudes, phases = make_sinusoid_tasks(n_tasks=3, n_samples=k, return_params=True,
                                                random_state=3)
grid = np.linspace(-5, 5, 200)[:, None]

fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
for ax, (X_s, y_s), a, p in zip(axes, shown, amplitudes, phases):
    ax.plot(grid, a * np.sin(grid[:, 0] - p), color="k", lw=1.5, label="true function")
    ax.plot(grid, meta.adapt(X_s, y_s).predict(grid), color="C0", lw=2,
            label="MAML, adapted (1 step)")
    ax.plot(grid, ten_steps["meta-trained"].adapt(X_s, y_s).predict(grid), color="C2", lw=1.5,
            label="MAML, adapted (10 steps)")
    ax.plot(grid, random_start.adapt(X_s, y_s).predict(grid), color="C3", ls="--",
            label="random start, adapted")
    ax.scatter(X_s[:, 0], y_s, color="k", zorder=3, s=30, label=f"K={k} support points")
    ax.set_title(f"A={a:.2f}, phase={p:.2f}")
    ax.set_xlabel("x")
axes[0].set_ylabel("y")
axes[0].legend(loc="lower left", fontsize=8)

history = [meta.initial_valid_score_, *meta.history_[:, "valid_loss"]]
axes[3].plot(np.arange(len(history)), history, marker="o", ms=3)
axes[3].axvline(meta.best_epoch_, color="grey", ls=":", label="kept epoch")
axes[3].set_xlabel("epoch")
axes[3].set_ylabel("meta-validation MSE (K=10)")
axes[3].set_title("meta-training")
axes[3].legend(fontsize=8)
fig.tight_layout()

out = os.path.join(os.environ.get("SKLMETA_EXAMPLES_OUT", "."), "plot_sinusoid.png")
fig.savefig(out, dpi=100)
print(f"\nsaved {out}")
