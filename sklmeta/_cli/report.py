"""Results of the command line: tables, verdicts computed from the scores, plots, CSV.

A :class:`Panel` holds every episode's score per (method, shot count) of one
table; everything printed or drawn is computed from those scores. Scores are
"higher is better" (scikit-learn's convention); :func:`natural` turns a score
and its interval into the metric's own terms (an MSE from a negated MSE, a
percentage from an accuracy), the only place that sign is flipped.
"""

import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..model_selection import mean_ci
from .scenarios import ALGORITHMS, CLASSIFIER_BASELINES, FINE_TUNED, RANDOM_START

COLUMNS = ["scenario", "shots", "method", "episode", "score"]  # of <scenario>.csv
META, BASELINE, REFERENCE = "meta-learner", "baseline", "reference"

# One colour per method in every plot: meta-learners in cool and warm tones,
# baselines in earthy ones, the random start grey.
COLOURS = {
    **dict(zip([a.row for a in ALGORITHMS.values()],
               ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"])),
    RANDOM_START: "tab:gray",
    **dict(zip([*CLASSIFIER_BASELINES, FINE_TUNED],
               ["tab:brown", "tab:pink", "tab:olive", "tab:cyan", "black"])),
}
_SPARE = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d"]
STYLES = {  # role -> line style and marker
    META: dict(ls="-", marker="o"),
    BASELINE: dict(ls="--", marker="s"),
    REFERENCE: dict(ls=":", marker="x"),
}


def colour(method):
    """The method's colour, the same in every panel and every run.

    Methods outside :data:`COLOURS` get a spare colour picked by a checksum of
    their name, so that it does not depend on which other methods are drawn.
    """
    return COLOURS.get(method) or _SPARE[zlib.crc32(method.encode()) % len(_SPARE)]


def interval(scores, bounds):
    """Mean of the scores and its 95% Student-t interval, clipped to ``bounds``.

    The Student-t interval assumes a normal mean; near the edge of a bounded
    score (an accuracy near 1, say) it can reach past it. Clipping it to the
    score's range (``bounds``, e.g. ``(0, 1)`` for an accuracy) keeps only
    values the score can take, so a reported interval never claims an accuracy
    above 100%.

    Examples
    --------
    >>> m, lo, hi = interval([1.0, 1.0, 0.9, 1.0], bounds=(0.0, 1.0))
    >>> round(m, 3), round(lo, 3), hi
    (0.975, 0.895, 1.0)
    """
    m, lo, hi = mean_ci(scores)
    low, high = bounds
    return m, float(np.clip(lo, low, high)), float(np.clip(hi, low, high))


def natural(metric, m, lo, hi):
    """A score and its interval in the metric's terms: MSE for a negated MSE, % for accuracy."""
    if metric.negated:  # the scorer is minus the metric: flip it, and the interval
        m, lo, hi = -m, -hi, -lo
    scale = 100 if metric.percent else 1
    return scale * m + 0.0, scale * lo + 0.0, scale * hi + 0.0  # + 0.0: no "-0.000"


def _amount(metric, m, lo, hi, sign=""):
    """A difference of scores and its interval, in points (accuracy) or the metric's units."""
    if metric.percent:
        return f"{100 * m:{sign}.1f} points [{100 * lo:{sign}.1f}, {100 * hi:{sign}.1f}]"
    return f"{m:{sign}.3f} {metric.name} [{lo:{sign}.3f}, {hi:{sign}.3f}]"


def verdict(k, metric, learner, baseline, gains):
    """One line: the best meta-learner against the best baseline over the same episodes.

    ``gains`` are the episodes' score of ``learner`` minus that of ``baseline``
    (higher is better, so for an MSE it is how much lower the learner's is).
    Meta-learning wins when the whole 95% interval of the mean gain is above
    zero, the baselines when it is below; otherwise the verdict is inconclusive.

    Examples
    --------
    >>> from sklmeta._cli.scenarios import ACCURACY
    >>> print(verdict(5, ACCURACY, "MAML", "1-NN", [0.1, 0.2, 0.15, 0.12])[:55])
    - 5-shot: meta-learning wins by 14.3 points [7.3, 21.2]
    >>> print(verdict(5, ACCURACY, "MAML", "1-NN", [0.1, -0.2, 0.15, 0.12])[:54])
    - 5-shot: inconclusive, the 95% interval includes zero
    """
    width = metric.bounds[1] - metric.bounds[0]  # a difference of two scores stays in +-width
    m, lo, hi = interval(gains, (-width, width))
    who = (f"the best meta-learner ({learner}) against the best baseline ({baseline}), paired "
           f"over the same {len(gains)} episodes")
    if lo > 0:
        return f"- {k}-shot: meta-learning wins by {_amount(metric, m, lo, hi)}: {who}."
    if hi < 0:
        return f"- {k}-shot: the baselines win by {_amount(metric, -m, -hi, -lo)}: {who}."
    better = "higher accuracy" if metric.percent else f"lower {metric.name}"
    return (f"- {k}-shot: inconclusive, the 95% interval includes zero: {who}, the "
            f"meta-learner's gain ({better}) is {_amount(metric, m, lo, hi, '+')}.")


class Panel:
    """One table: methods by shot counts, every method scored on the same episodes.

    ``roles`` gives each method's role: ``"meta-learner"``, ``"baseline"`` or
    ``"reference"`` (MAML's random start: drawn and tabled, in no verdict).
    """

    def __init__(self, label, title, metric, roles, *, chance=None, notes=()):
        self.label, self.title, self.metric = label, title, metric
        self.roles, self.chance, self.notes = dict(roles), chance, list(notes)
        self.scores = {}  # (method, k) -> every episode's score
        self.shots = []
        self.done = False  # all cells scored and the table printed

    @property
    def methods(self):
        return list(self.roles)

    def add(self, method, k, scores):
        if k not in self.shots:
            self.shots.append(k)
        self.scores[method, k] = np.asarray(scores, dtype=float)

    def summary(self, method, k):
        """(mean, low, high) of the method's score at ``k`` shots, clipped to the metric's range."""
        return interval(self.scores[method, k], self.metric.bounds)

    def cell(self, method, k):
        if (method, k) not in self.scores:
            return "not run (interrupted)"
        m, lo, hi = natural(self.metric, *self.summary(method, k))
        if self.metric.percent:
            return f"{m:.1f}% [{lo:.1f}, {hi:.1f}]"
        return f"{m:.3f} [{lo:.3f}, {hi:.3f}]"

    def table(self, first="method"):
        rows = [n for n in self.methods if any((n, k) in self.scores for k in self.shots)]
        header = [first] + [f"{k}-shot {self.metric.header}" for k in self.shots]
        cells = [[n] + [self.cell(n, k) for k in self.shots] for n in rows]
        return pd.DataFrame(cells, columns=header).to_markdown(index=False, tablefmt="pipe")

    def _best(self, role, k):
        done = [n for n, r in self.roles.items() if r == role and (n, k) in self.scores]
        return max(done, key=lambda n: self.scores[n, k].mean()) if done else None

    def verdicts(self):
        """Per shot count, the verdict on the best meta-learner against the best baseline."""
        lines = []
        for k in self.shots:
            learner, baseline = self._best(META, k), self._best(BASELINE, k)
            if learner is not None and baseline is not None:
                gains = self.scores[learner, k] - self.scores[baseline, k]
                lines.append(verdict(k, self.metric, learner, baseline, gains))
        return lines

    def text(self, interrupted=False):
        """The panel as markdown: heading, table, verdicts and (unless interrupted) notes."""
        parts = [f"### {self.label}: {self.title}"
                 + (" (INTERRUPTED: partial results)" if interrupted else ""), self.table()]
        verdicts = self.verdicts()
        parts += ["\n".join(verdicts)] if verdicts else []
        parts += ["\n".join(self.notes)] if self.notes and not interrupted else []
        return "\n\n".join(parts)

    def frames(self):
        """Every episode's score, one frame per cell done, with the columns ``COLUMNS``."""
        return [pd.DataFrame({"scenario": self.label, "shots": k, "method": name,
                              "episode": np.arange(len(s)), "score": s})
                for (name, k), s in self.scores.items()]


def write_csv(panels, path):
    """Every episode's score of the panels, in one CSV with the columns ``COLUMNS``."""
    frames = [f for p in panels for f in p.frames()]
    scores = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    scores.to_csv(path, index=False)
    return path


def figure(panels):
    """Score against shots, a line and 95% band per method, one axes per panel.

    Meta-learners are solid lines with circles, baselines dashed with squares,
    the random start dotted; a method has the same colour in every panel
    (:func:`colour`). One legend for the whole figure sits below the axes,
    off the data. Drawn on matplotlib's Agg canvas directly, so no pyplot or
    global backend state is touched. Raises ImportError without matplotlib.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5 * len(panels), 4.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    handles = {}
    for ax, panel in zip(axes, panels):
        for method, role in panel.roles.items():
            ks = [k for k in panel.shots if (method, k) in panel.scores]
            if not ks:
                continue
            m, lo, hi = np.array([natural(panel.metric, *panel.summary(method, k))
                                  for k in ks]).T
            (line,) = ax.plot(ks, m, color=colour(method), label=method, **STYLES[role])
            ax.fill_between(ks, lo, hi, color=colour(method), alpha=0.15)
            handles.setdefault(method, line)
        if panel.chance is not None:
            handles["chance"] = ax.axhline(natural(panel.metric, panel.chance, 0, 0)[0],
                                           color="grey", lw=1, ls=(0, (1, 3)), label="chance")
        ax.set_xscale("log")
        ax.set_xticks(panel.shots, [str(k) for k in panel.shots])
        ax.minorticks_off()
        ax.set_xlabel("shots" + ("" if panel.metric.negated else " per class"))
        ax.set_ylabel(panel.metric.header + (" (%)" if panel.metric.percent else ""))
        ax.set_title(f"{panel.label}\n{panel.title}", fontsize=9)
    fig.tight_layout()
    # Below every axes and its tick labels, in figure coordinates; savefig's
    # bbox_inches="tight" grows the image to hold it.
    fig.legend(handles.values(), handles.keys(), loc="upper center", fontsize=7,
               bbox_to_anchor=(0.5, 0.0), ncol=min(len(handles), max(2, 3 * len(panels))),
               frameon=False)
    return fig


def save_plot(panels, path):
    """Write :func:`figure` to ``path``; None (and a message) without matplotlib."""
    try:
        fig = figure(panels)
    except ImportError:
        print("matplotlib is not installed, so no plot was written "
              "(pip install 'sklmeta[plot]' to get one).")
        return None
    fig.savefig(path, dpi=100, bbox_inches="tight")
    return path


def save(name, panels, out):
    """Write ``<name>.csv`` (every episode's score) and ``<name>.png`` into ``out``."""
    if not panels:
        return
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv = write_csv(panels, out / f"{name}.csv")
    print(f"Every episode's score ({panels[0].metric.csv}): {csv}")
    png = save_plot(panels, out / f"{name}.png")
    if png is not None:
        print(f"Plot: {png}")
    print(flush=True)

