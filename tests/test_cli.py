"""``python -m sklmeta``: run in-process through ``main(argv)`` on tiny budgets."""

import dataclasses
import signal
import subprocess
import sys

import pandas as pd
import pytest
import torch

from sklmeta import _cli
from sklmeta._cli import main

TINY = ["--epochs", "1", "--episodes", "3", "--shots", "1"]
COLUMNS = ["scenario", "shots", "method", "episode", "score"]
CLASSIFIER_ROWS = [_cli.MAML, "Meta-SGD", "ANIL", "Reptile", "ProtoNet", _cli.RANDOM_START,
                   "RandomForest", "1-NN", "LogisticRegression", _cli.MLP]


def test_compare_prints_tables_and_writes_csv_and_plot(tmp_path, capsys):
    argv = ["compare", "--scenario", "shared-structure", "digits", "--epochs", "1",
            "--episodes", "4", "--shots", "1", "2", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Scenarios: shared-structure, digits" in out
    assert "| method | 1-shot query accuracy | 2-shot query accuracy |" in out
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


def test_sinusoid_reports_mse(tmp_path, capsys):
    argv = ["compare", "--scenario", "sinusoid", "--epochs", "1", "--episodes", "3",
            "--shots", "5", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| method | 5-shot query MSE (lower is better) |" in out
    assert "| pretrained + fine-tuned (10 SGD steps) | " in out
    scores = pd.read_csv(tmp_path / "sinusoid.csv")
    assert list(scores.columns) == COLUMNS
    # MAML, Meta-SGD, ANIL, Reptile (no ProtoNet: classification only), the random start
    # and two baselines, 3 episodes each
    assert set(scores["method"]) == {_cli.MAML, "Meta-SGD", "ANIL", "Reptile",
                                     _cli.RANDOM_START, "pretrained + fine-tuned (10 SGD steps)",
                                     _cli.MLP}
    assert len(scores) == 7 * 3
    assert (scores["score"] <= 0).all()  # negated MSE, as scikit-learn scores it


def test_algorithms_option_picks_the_meta_learners(tmp_path, capsys):
    argv = ["compare", "--scenario", "shared-structure", *TINY, "--algorithms", "protonet",
            "anil", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Meta-training ProtoNetClassifier" in out and "Meta-training ANILClassifier" in out
    assert "Meta-training MAMLClassifier" not in out
    methods = set(pd.read_csv(tmp_path / "shared-structure.csv")["method"])
    assert {"ProtoNet", "ANIL"} <= methods and not {_cli.MAML, "Meta-SGD", "Reptile"} & methods
    # the verdict compares the best meta-learner with the best baseline
    assert "the best meta-learner (" in out


def test_cross_dataset_runs_every_rotation(tmp_path, capsys):
    # Meta-testing on breast_cancer (30 features) after meta-training on iris and wine
    # (4 and 13) needs the training tasks padded to 30.
    assert main(["compare", "--scenario", "cross-dataset", *TINY, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    scores = pd.read_csv(tmp_path / "cross-dataset.csv")
    rotations = {"cross-dataset:iris", "cross-dataset:wine", "cross-dataset:breast_cancer"}
    assert set(scores["scenario"]) == rotations
    for label in rotations:
        assert f"### {label}:" in out


def test_threads_default_to_one_and_are_restored(tmp_path, monkeypatch):
    seen = []
    scenario = dataclasses.replace(_cli.SCENARIOS["digits"],
                                   run=lambda run: seen.append(torch.get_num_threads()))
    monkeypatch.setitem(_cli.SCENARIOS, "digits", scenario)
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
    out = capsys.readouterr().out
    for name in _cli.SCENARIOS:
        assert name in out


def test_interrupt_prints_the_rows_done_and_exits_130(tmp_path, capsys, monkeypatch):
    real_compare, calls = _cli.compare, []

    def compare_then_interrupt(*args, **kwargs):
        # One compare call per (shot count, method): Ctrl-C after the first method.
        if calls:
            raise KeyboardInterrupt
        calls.append(args)
        return real_compare(*args, **kwargs)

    monkeypatch.setattr(_cli, "compare", compare_then_interrupt)
    argv = ["compare", "--scenario", "digits", *TINY, "--out", str(tmp_path)]
    assert main(argv) == 130
    out = capsys.readouterr().out
    assert "Interrupted" in out
    partial = out[out.index("INTERRUPTED"):]
    assert f"| {_cli.MAML} | " in partial
    assert _cli.RANDOM_START not in partial.split("Every episode")[0]
    scores = pd.read_csv(tmp_path / "digits.csv")
    assert set(scores["method"]) == {_cli.MAML} and len(scores) == 3


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
        _cli._fit(SwallowsInterrupts())
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
    out = capsys.readouterr().out
    assert "matplotlib is not installed" in out
    assert (tmp_path / "digits.csv").is_file()
    assert not (tmp_path / "digits.png").exists()


@pytest.mark.slow
def test_default_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "no arguments: the default scenarios" in out
    for scenario in _cli.DEFAULT_SCENARIOS:
        assert f"### {scenario}:" in out
        assert (tmp_path / "sklmeta-results" / f"{scenario}.png").is_file()
