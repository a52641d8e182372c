"""``python -m sklmeta`` (and the ``sklmeta`` script): the meta-learners against the baselines.

Each scenario meta-trains the meta-learners (MAML, Meta-SGD, ANIL, Reptile and,
for classification, ProtoNet) on training tasks, then scores them and the
estimators a practitioner would fit on the same support sets on identical
test episodes (:func:`sklmeta.model_selection.compare`). It prints a markdown
table (mean and 95% CI per method and shot count) with a verdict per shot count
computed from the paired scores, and writes, per scenario, a CSV of every
episode's score and a PNG plot.

- ``main.py``: the options (argparse only; imports neither torch nor skorch);
- ``scenarios.py``: the scenarios as data, shared with ``benchmarks/few_shot_accuracy.py``;
- ``run.py``: meta-training and scoring (imported once the options are parsed);
- ``report.py``: the results model, tables, verdicts, plots and CSV.
"""

from .main import main

__all__ = ["main"]
