"""``python -m sklmeta``: run in-process through ``main(argv)`` on tiny budgets."""

import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sklmeta._cli import main, report, run
from sklmeta._cli.scenarios import (
    ACCURACY,
    DEFAULT_SCENARIOS,
    MAML,
    MLP,
    MSE,
    RANDOM_START,
    SCENARIOS,
)
from sklmeta.model_selection import mean_ci

ROOT = Path(__file__).resolve().parents[1]  # a fresh interpreter imports this checkout's sklmeta
TINY = ["--epochs", "1", "--episodes", "3", "--shots", "1"]
COLUMNS = ["scenario", "shots", "method", "episode", "score"]
CLASSIFIER_ROWS = [MAML, "Meta-SGD", "ANIL", "Reptile", "ProtoNet", "R2-D2 (MetaRidge)",
                   "NeuralProcess", RANDOM_START,
                   "RandomForest", "1-NN", "LogisticRegression", MLP]
VERDICTS = ("meta-learning wins by ", "the baselines win by ",
            "inconclusive, the 95% interval includes zero: ")



def printed(capsys):
    """What was printed, the markdown tables' padding squeezed to one space."""
    return re.sub(r"(?<=[^ ]) {2,}(?=\|)", " ", capsys.readouterr().out)

def test_compare_prints_tables_and_writes_csv_and_plot(tmp_path, capsys):
    argv = ["compare", "--scenario", "shared-structure", "digits", "--epochs", "1",
            "--episodes", "4", "--shots", "1", "2", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = printed(capsys)
    assert "Scenarios: shared-structure, digits" in out
    assert "| method | 1-shot query accuracy | 2-shot query accuracy |" in out
    assert "|:---" in out  # pandas' to_markdown (tabulate's pipe format) drew the table
    for row in CLASSIFIER_ROWS:
        assert f"| {row} | " in out
    assert "Honest note" in out
    for scenario in ("shared-structure", "digits"):
        csv = tmp_path / f"{scenario}.csv"
        png = tmp_path / f"{scenario}.png"
        assert str(csv) in out and str(png) in out
        assert png.stat().st_size > 0
        scores = pd.read_csv(csv)
        assert list(scores.columns) == COLUMNS
        assert len(scores) == len(CLASSIFIER_ROWS) * 2 * 4
        assert set(scores["scenario"]) == {scenario}
        assert set(scores["method"]) == set(CLASSIFIER_ROWS)
        assert scores["score"].between(0, 1).all()
        # Every method saw the same number of episodes per shot count.
        assert (scores.groupby(["shots", "method"]).size() == 4).all()
    # One verdict per scenario and shot count, each computed from the scores: no
    # conclusion is written in advance.
    verdicts = [line for line in out.splitlines() if line.startswith("- ") and "-shot: " in line]
    assert len(verdicts) == 2 * 2
    assert all(line.split("-shot: ", 1)[1].startswith(VERDICTS) for line in verdicts)
    assert "This is where meta-learning wins" not in out


def test_sinusoid_reports_mse(tmp_path, capsys):
    argv = ["compare", "--scenario", "sinusoid", "--epochs", "1", "--episodes", "3",
            "--shots", "5", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = printed(capsys)
    assert "| method | 5-shot query MSE (lower is better) |" in out
    assert "| pretrained + fine-tuned (10 SGD steps) | " in out
    scores = pd.read_csv(tmp_path / "sinusoid.csv")
    assert list(scores.columns) == COLUMNS
    # MAML, Meta-SGD, ANIL, Reptile, R2-D2, DKT, NeuralProcess (no ProtoNet: classification
    # only), the random start and two baselines, 3 episodes each
    assert set(scores["method"]) == {MAML, "Meta-SGD", "ANIL", "Reptile", "R2-D2 (MetaRidge)",
                                     "DKT (DeepKernelGP)", "NeuralProcess", RANDOM_START,
                                     "pretrained + fine-tuned (10 SGD steps)", MLP}
    assert len(scores) == 10 * 3
    assert (scores["score"] <= 0).all()  # negated MSE, as scikit-learn scores it


def test_algorithms_option_picks_the_meta_learners(tmp_path, capsys):
    argv = ["compare", "--scenario", "shared-structure", *TINY, "--algorithms", "protonet",
            "anil", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = printed(capsys)
    assert "Meta-training ProtoNetClassifier" in out and "Meta-training ANILClassifier" in out
    assert "Meta-training MAMLClassifier" not in out
    methods = set(pd.read_csv(tmp_path / "shared-structure.csv")["method"])
    assert {"ProtoNet", "ANIL"} <= methods and not {MAML, "Meta-SGD", "Reptile"} & methods
    # the verdict compares the best meta-learner with the best baseline
    assert "the best meta-learner (" in out


def test_cross_dataset_runs_every_rotation(tmp_path, capsys):
    # Meta-testing on breast_cancer (30 features) after meta-training on iris and wine
    # (4 and 13) needs the training tasks padded to 30.
    assert main(["compare", "--scenario", "cross-dataset", *TINY, "--out", str(tmp_path)]) == 0
    out = printed(capsys)
    scores = pd.read_csv(tmp_path / "cross-dataset.csv")
    rotations = {"cross-dataset:iris", "cross-dataset:wine", "cross-dataset:breast_cancer"}
    assert set(scores["scenario"]) == rotations
    for label in rotations:
        assert f"### {label}:" in out


def test_threads_default_to_one_and_are_restored(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(run, "run_scenario",
                        lambda opts, panels: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    for extra in ([], ["--threads", "3"]):
        assert main(["compare", "--scenario", "digits", "--out", str(tmp_path), *extra]) == 0
        assert torch.get_num_threads() == before
    assert seen == [1, 3]


@pytest.mark.parametrize("argv, option", [
    (["--episodes", "0"], "--episodes"),
    (["--episodes", "1"], "--episodes"),
    (["--shots", "two"], "--shots"),
    (["--shots", "0"], "--shots"),
    (["--scenario", "mnist"], "--scenario"),
    (["--algorithms", "mamal"], "--algorithms"),
    (["--device", "tpu"], "--device"),
    (["--threads", "-2"], "--threads"),
    (["--seed", "-1"], "--seed"),
    (["--n-way", "1"], "--n-way"),
    (["--scenario", "shared-structure", "--n-way", "3"], "--n-way"),
    (["--scenario", "sinusoid", "--n-way", "2"], "--n-way"),
    (["--scenario", "cross-dataset", "--shots", "40"], "--shots"),
])
def test_bad_option_exits_2_naming_it(argv, option, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["compare", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err


def test_out_must_be_a_folder(tmp_path, capsys):
    path = tmp_path / "a-file"
    path.write_text("")
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--out", str(path)])
    assert exc.value.code == 2
    assert "argument --out" in capsys.readouterr().err


def test_help_lists_the_scenarios(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--help"])
    assert exc.value.code == 0
    out = printed(capsys)
    for name in SCENARIOS:
        assert name in out


def test_interrupt_prints_the_rows_done_and_exits_130(tmp_path, capsys, monkeypatch):
    real_compare, calls = run.compare, []

    def compare_then_interrupt(*args, **kwargs):
        # One compare call per (shot count, method): Ctrl-C after the first method.
        if calls:
            raise KeyboardInterrupt
        calls.append(args)
        return real_compare(*args, **kwargs)

    monkeypatch.setattr(run, "compare", compare_then_interrupt)
    argv = ["compare", "--scenario", "digits", *TINY, "--out", str(tmp_path)]
    assert main(argv) == 130
    out = printed(capsys)
    assert "Interrupted" in out
    partial = out[out.index("INTERRUPTED"):]
    assert f"| {MAML} | " in partial
    assert RANDOM_START not in partial.split("Every episode")[0]
    scores = pd.read_csv(tmp_path / "digits.csv")
    assert set(scores["method"]) == {MAML} and len(scores) == 3


@pytest.mark.skipif(signal.getsignal(signal.SIGINT) is not signal.default_int_handler,
                    reason="SIGINT is handled by something else here")
def test_ctrl_c_that_skorch_swallows_still_stops_the_run():
    class SwallowsInterrupts:
        def fit(self):
            try:
                signal.raise_signal(signal.SIGINT)
            except KeyboardInterrupt:
                pass  # as skorch does: training ends quietly, fit returns
            return self

    with pytest.raises(KeyboardInterrupt):
        run.fit(SwallowsInterrupts())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_python_dash_m_entry_point():
    proc = subprocess.run([sys.executable, "-m", "sklmeta", "compare", "--episodes", "1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "python -m sklmeta compare: error: argument --episodes" in proc.stderr


def test_without_command_and_without_matplotlib(tmp_path, capsys, monkeypatch):
    # Options without a command run `compare`; without matplotlib, the CSV but no plot.
    for name in [*sys.modules, "matplotlib.backends.backend_agg", "matplotlib.figure"]:
        if name.split(".")[0] == "matplotlib":
            monkeypatch.setitem(sys.modules, name, None)  # import matplotlib... fails
    assert main(["--scenario", "digits", *TINY, "--out", str(tmp_path)]) == 0
    out = printed(capsys)
    assert "matplotlib is not installed" in out
    assert (tmp_path / "digits.csv").is_file()
    assert not (tmp_path / "digits.png").exists()


@pytest.mark.slow
def test_default_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    out = printed(capsys)
    assert "no arguments: the default scenarios" in out
    for scenario in DEFAULT_SCENARIOS:
        assert f"### {scenario}:" in out
        assert (tmp_path / "sklmeta-results" / f"{scenario}.png").is_file()


# ------------------------------------------------------- --help without torch or skorch
HEAVY = ("torch", "skorch")


def test_help_imports_neither_torch_nor_skorch():
    code = (
        "import sys\n"
        "from sklmeta._cli import main\n"
        "for argv in (['--help'], ['compare', '--help'], ['--version']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, exc.code\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'skorch'}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "compare" in proc.stdout and "sinusoid" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_python_dash_m_help_imports_neither_torch_nor_skorch():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "sklmeta", "--help"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and "usage: python -m sklmeta" in proc.stdout
    # -X importtime writes "import time: self | cumulative | module" per import to stderr.
    imported = {line.rsplit("|", 1)[1].strip().split(".")[0]
                for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "sklmeta" in imported
    assert not imported & set(HEAVY)


# ------------------------------------------------------------------ verdicts and CIs
def test_verdict_is_inconclusive_when_the_interval_crosses_zero():
    gains = [0.2, -0.2, 0.1, -0.1, 0.05]
    m, lo, hi = mean_ci(gains)
    assert lo < 0 < hi
    line = report.verdict(5, ACCURACY, "MAML", "1-NN", gains)
    assert line.startswith("- 5-shot: inconclusive, the 95% interval includes zero: ")
    assert "wins" not in line
    assert f"{100 * m:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}]" in line
    assert "the best meta-learner (MAML) against the best baseline (1-NN)" in line


def test_verdict_says_meta_learning_wins_by_the_interval_above_zero():
    gains = [0.10, 0.20, 0.15, 0.12, 0.18]
    m, lo, hi = mean_ci(gains)
    assert lo > 0
    line = report.verdict(1, ACCURACY, "ANIL", "LogisticRegression", gains)
    assert line.startswith(f"- 1-shot: meta-learning wins by {100 * m:.1f} points "
                           f"[{100 * lo:.1f}, {100 * hi:.1f}]: ")
    assert "paired over the same 5 episodes" in line


def test_verdict_says_the_baselines_win_by_the_interval_below_zero():
    gains = [-0.10, -0.20, -0.15, -0.12, -0.18]
    m, lo, hi = mean_ci(gains)
    line = report.verdict(1, ACCURACY, "ANIL", "1-NN", gains)
    assert line.startswith(f"- 1-shot: the baselines win by {-100 * m:.1f} points "
                           f"[{-100 * hi:.1f}, {-100 * lo:.1f}]: ")


def test_regression_verdict_reads_as_an_mse_lower_by():
    # Scores are negated MSEs; the meta-learner's is about 0.5 lower than the baseline's.
    learner = -np.array([0.40, 0.55, 0.50, 0.45, 0.60])
    baseline = -np.array([1.00, 1.05, 0.95, 1.02, 1.08])
    m, lo, hi = mean_ci(learner - baseline)
    line = report.verdict(5, MSE, "MAML", "fine-tuned", learner - baseline)
    assert line.startswith(f"- 5-shot: meta-learning wins by {m:.3f} MSE [{lo:.3f}, {hi:.3f}]")
    assert m > 0


def test_panel_verdicts_pit_the_best_meta_learner_against_the_best_baseline():
    roles = {"MAML": report.META, "ANIL": report.META, RANDOM_START: report.REFERENCE,
             "1-NN": report.BASELINE, "LogisticRegression": report.BASELINE}
    panel = report.Panel("p", "a panel", ACCURACY, roles)
    rng = np.random.default_rng(0)
    means = {"MAML": 0.6, "ANIL": 0.8, RANDOM_START: 0.95, "1-NN": 0.7, "LogisticRegression": 0.5}
    for method, mean in means.items():
        panel.add(method, 1, np.clip(mean + rng.normal(0, 0.02, 30), 0, 1))
    (line,) = panel.verdicts()
    # the random start scores best, but it is a reference, not a meta-learner
    assert "the best meta-learner (ANIL) against the best baseline (1-NN)" in line
    assert line.startswith("- 1-shot: meta-learning wins by ")


def test_accuracy_interval_is_clipped_to_0_1():
    scores = [1.0] * 9 + [0.8]
    m, lo, hi = mean_ci(scores)
    assert hi > 1  # the Student-t interval reaches past 100%
    assert report.interval(scores, ACCURACY.bounds) == (m, lo, 1.0)
    panel = report.Panel("p", "t", ACCURACY, {"1-NN": report.BASELINE})
    panel.add("1-NN", 5, scores)
    assert panel.cell("1-NN", 5) == f"{100 * m:.1f}% [{100 * lo:.1f}, 100.0]"
    low = [0.0] * 9 + [0.2]
    assert mean_ci(low)[1] < 0 and report.interval(low, ACCURACY.bounds)[1] == 0.0


def test_mse_interval_is_clipped_at_zero_and_flipped_once():
    scores = [0.0] * 9 + [-0.5]  # negated MSEs: nine perfect episodes
    m, lo, hi = mean_ci(scores)
    assert hi > 0
    panel = report.Panel("p", "t", MSE, {"MAML": report.META})
    panel.add("MAML", 5, scores)
    assert panel.summary("MAML", 5) == (m, lo, 0.0)
    assert panel.cell("MAML", 5) == f"{-m:.3f} [0.000, {-lo:.3f}]"


# ----------------------------------------------------------------------------- plots
def _panel(label, methods, shots=(1, 5)):
    panel = report.Panel(label, "t", ACCURACY, methods, chance=0.5)
    rng = np.random.default_rng(len(label))
    for k in shots:
        for method in methods:
            panel.add(method, k, rng.uniform(0.4, 0.9, 10))
    return panel


def test_plot_colours_a_method_the_same_in_every_panel():
    first = _panel("a", {MAML: report.META, "1-NN": report.BASELINE,
                         RANDOM_START: report.REFERENCE})
    # other methods, and in another order: the colours do not follow the order
    second = _panel("b", {"1-NN": report.BASELINE, "ANIL": report.META, MAML: report.META})
    fig = report.figure([first, second])
    colours = [{line.get_label(): line.get_color() for line in ax.get_lines()}
               for ax in fig.axes]
    for method in (MAML, "1-NN"):
        assert colours[0][method] == colours[1][method] == report.colour(method)
    assert colours[0][MAML] != colours[0]["1-NN"]
    # meta-learners solid, baselines dashed, the random start dotted
    styles = {line.get_label(): line.get_linestyle() for line in fig.axes[0].get_lines()}
    assert styles[MAML] == "-" and styles["1-NN"] == "--" and styles[RANDOM_START] == ":"
    # every known method has a colour of its own
    assert len(set(report.COLOURS.values())) == len(report.COLOURS)


@pytest.mark.parametrize("n_panels", [1, 3])
def test_plot_legend_is_outside_every_axes(n_panels):
    methods = {MAML: report.META, "Meta-SGD": report.META, "ANIL": report.META,
               RANDOM_START: report.REFERENCE, "1-NN": report.BASELINE,
               "RandomForest": report.BASELINE, MLP: report.BASELINE}
    fig = report.figure([_panel(f"p{i}", methods) for i in range(n_panels)])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    assert {t.get_text() for t in legend.get_texts()} == {*methods, "chance"}
    box = legend.get_window_extent(renderer)
    for ax in fig.axes:
        assert ax.get_legend() is None
        # below the axes, its tick labels and its x label: off the data and the text
        assert box.y1 <= ax.get_tightbbox(renderer).y0
        assert not box.overlaps(ax.get_window_extent(renderer))
    # and inside the saved image, which bbox_inches="tight" grows to hold it (inches)
    assert fig.get_tightbbox(renderer).y0 * fig.dpi <= box.y0 + 1


def test_the_benchmark_runs_the_command_lines_scenarios():
    import importlib.util

    root = ROOT
    sys.path.insert(0, str(root / "benchmarks"))  # for its `from _machine import ...`
    try:
        spec = importlib.util.spec_from_file_location(
            "few_shot_accuracy", root / "benchmarks" / "few_shot_accuracy.py")
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
    finally:
        sys.path.remove(str(root / "benchmarks"))
    assert bench.SCENARIOS is SCENARIOS
    assert {name for name, _ in bench.SECTIONS} <= set(SCENARIOS)


def test_automl_option_scores_autometas_pick_beside_the_others(tmp_path, capsys):
    argv = ["compare", "--scenario", "sinusoid", "--epochs", "1", "--episodes", "3",
            "--shots", "5", "--algorithms", "maml", "--automl", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = printed(capsys)
    assert "AutoMeta chose " in out and "(held out tasks)" in out
    rows = [line for line in out.splitlines() if line.startswith("| AutoMeta (pick: ")]
    assert len(rows) == 1
    pick = rows[0].split(" | ")[0][len("| AutoMeta (pick: "):-1]
    # chosen among the meta-learners and the baselines fit per support set; the
    # pretrained baseline (pretrained on the held-out tasks too) is no candidate
    assert pick in {MAML, MLP}
    scores = pd.read_csv(tmp_path / "sinusoid.csv")
    auto = scores[scores["method"] == f"AutoMeta (pick: {pick})"]["score"].to_numpy()
    assert len(auto) == 3 and (auto <= 0).all()
    if pick == MLP:  # a baseline picked: the same model fit on each support set
        np.testing.assert_allclose(auto, scores[scores["method"] == MLP]["score"], rtol=1e-6)
