"""The inductor graph pass of ``compile=True``: batched products and sums in memory order."""

import copy

import pytest
import torch
from torch.fx.experimental.proxy_tensor import make_fx

from sklmeta._core.graph_pass import (
    _sum_in_memory_order,
    _turn_round,
    inductor_options,
    layout_pass,
)


def _products(graph):
    return [n for n in graph.nodes if n.target is torch.ops.aten.bmm.default]


def _two_products(a, b, c):
    # [3, 8, 5] @ [3, 5, 2] -> [3, 8, 2]: 2 columns, 8 rows (turned round);
    # [3, 2, 8] @ [3, 8, 5] -> [3, 2, 5]: as wide as it is tall or wider (left)
    return torch.bmm(a, b) * 2, torch.bmm(c, a)


def _inputs(device="cpu"):
    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(*s, generator=g) for s in ((3, 8, 5), (3, 5, 2), (3, 2, 8)))
    return a.to(device), b.transpose(1, 2).contiguous().transpose(1, 2).to(device), c.to(device)


def test_a_narrow_output_product_is_computed_turned_round_to_the_same_values():
    inputs = _inputs()
    gm = make_fx(_two_products, tracing_mode="fake")(*inputs)
    assert len(_products(gm.graph)) == 2
    assert _turn_round(gm.graph) == 1
    gm.recompile()
    shapes = sorted(tuple(n.meta["val"].shape) for n in _products(gm.graph))
    assert shapes == [(3, 2, 5), (3, 2, 8)]  # the [3, 8, 2] product is now its transpose's
    for got, want in zip(gm(*inputs), _two_products(*inputs)):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want)
    assert _turn_round(gm.graph) == 0  # nothing narrow left


def test_a_product_with_more_columns_than_narrow_is_left():
    # 33 columns, 40 rows: narrower than tall, but past NARROW, where turning round
    # stops paying (benchmarks/graph_pass.py)
    from sklmeta._core.graph_pass import NARROW

    a, b = torch.randn(2, 40, 5), torch.randn(2, 5, NARROW + 1)
    gm = make_fx(torch.bmm, tracing_mode="fake")(a, b)
    assert _turn_round(gm.graph) == 0
    gm = make_fx(torch.bmm, tracing_mode="fake")(a, b[..., :NARROW])
    assert _turn_round(gm.graph) == 1


def _two_sums(x):
    # over the tasks of x's transpose (laid out across its rows: taken in memory order)
    # and of x itself (contiguous: left); over another dim (left)
    return x.transpose(1, 2).sum(0, keepdim=True) * 3, x.sum(0, keepdim=True), x.sum(1)


def test_a_sum_over_tasks_of_a_transposed_tensor_is_taken_in_memory_order():
    x = torch.randn(4, 6, 3, generator=torch.Generator().manual_seed(0))
    gm = make_fx(_two_sums, tracing_mode="fake")(x)
    assert _sum_in_memory_order(gm.graph) == 1
    gm.recompile()
    summed = [n.args[0].meta["val"] for n in gm.graph.nodes
              if n.target is torch.ops.aten.sum.dim_IntList and n.args[1] == [0]]
    assert all(v.is_contiguous() for v in summed)
    for got, want in zip(gm(x), _two_sums(x)):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want)
    assert _sum_in_memory_order(gm.graph) == 0


def test_products_and_sums_on_other_devices_are_left_as_they_are():
    gm = make_fx(_two_products, tracing_mode="fake")(*_inputs("meta"))
    assert _turn_round(gm.graph) == 0
    gm = make_fx(_two_sums, tracing_mode="fake")(torch.randn(4, 6, 3, device="meta"))
    assert _sum_in_memory_order(gm.graph) == 0


def test_the_pass_is_added_for_inductor_only_and_never_over_the_callers_own():
    the_pass = layout_pass()
    assert layout_pass() is the_pass  # one pass: one inductor cache key
    assert inductor_options({"dynamic": False}) == {
        "dynamic": False, "options": {"post_grad_custom_post_pass": the_pass}}
    mine = {"options": {"max_autotune": True}}
    assert inductor_options(mine)["options"] == {"max_autotune": True,
                                                 "post_grad_custom_post_pass": the_pass}
    assert mine == {"options": {"max_autotune": True}}  # the caller's dict is not changed
    for options in ({"backend": "aot_eager"}, {"mode": "max-autotune"},
                    {"options": {"post_grad_custom_post_pass": None}}):
        assert inductor_options(options) == options


def test_a_cpu_graph_gets_inductors_cpp_wrapper_unless_the_caller_says_otherwise():
    the_pass = layout_pass()
    assert inductor_options({}, cpu=True) == {
        "options": {"post_grad_custom_post_pass": the_pass, "cpp_wrapper": True}}
    assert "cpp_wrapper" not in inductor_options({})["options"]  # not for a GPU graph
    off = {"options": {"cpp_wrapper": False}}
    assert inductor_options(off, cpu=True)["options"]["cpp_wrapper"] is False
    for options in ({"backend": "aot_eager"}, {"mode": "reduce-overhead"}):
        assert inductor_options(options, cpu=True) == options


def test_the_whole_cpu_meta_gradient_compiles_with_the_cpp_wrapper_and_a_forward_without(
        monkeypatch):
    # the wrapper only where the whole meta-gradient compiles: a forward-only graph (a graph
    # break, a closed-form learner's linear algebra) has ops with no C shim in the wrapper
    from sklmeta._core import EpisodeLoss, algorithms
    from sklmeta._core import compiled as compiled_module

    seen = []

    def record(fn, **options):
        seen.append(((options.get("options") or {}).get("cpp_wrapper"), fn.__name__))
        return fn

    monkeypatch.setattr(compiled_module.torch, "compile", record)
    net = torch.nn.Sequential(torch.nn.Linear(1, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    algorithm = algorithms.maml(inner_lr=0.05, inner_steps=1, adapt_steps=1)
    learner, loss = algorithm.learner(net, 1), EpisodeLoss("regression")
    x = torch.randn(2, 6, 1)
    batch = (x[:, :3], x[:, :3, 0], x[:, 3:], x[:, 3:, 0])
    compiled_module.CompiledMetaLoss(algorithm, learner, loss)(*batch)
    compiled_module.CompiledMetaLoss(algorithm, learner, loss, gradients=False)(*batch)
    assert seen == [(True, "_pure_gradients"), (None, "_pure")]
    elsewhere = algorithm.learner(copy.deepcopy(net).to("meta"), 1)  # not a CPU graph
    assert not compiled_module.CompiledMetaLoss(algorithm, elsewhere, loss)._cpu()


@pytest.mark.slow
def test_inductor_turns_the_products_round_to_the_eager_meta_gradient():
    # a 2-hidden-layer net, 5 support rows: the meta-gradient's per-task products of 16-wide
    # layers with 5 rows are narrow; compiled with the pass, it is the eager meta-gradient
    import torch._functorch.config
    import torch._inductor.config

    from sklmeta._core import EpisodeLoss, algorithms
    from sklmeta._core.compiled import CompiledMetaLoss

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16),
                              torch.nn.ReLU(), torch.nn.Linear(16, 1))
    algorithm = algorithms.maml(inner_lr=0.05, inner_steps=2, adapt_steps=2)
    learner, loss = algorithm.learner(net, 1), EpisodeLoss("regression")
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 10, 1, generator=g) * 10 - 5
    y = torch.sin(x[..., 0])
    batch = (x[:, :5], y[:, :5], x[:, 5:], y[:, 5:])
    before = layout_pass().turned
    compiled = CompiledMetaLoss(algorithm, learner, loss)
    with torch._inductor.config.patch(fx_graph_cache=False), \
            torch._functorch.config.patch(enable_autograd_cache=False):  # the pass runs
        _, _, _, got = compiled(*batch)
    assert layout_pass().turned > before
    want = torch.autograd.grad(algorithm.meta_loss(learner, *batch, loss=loss)[0],
                               list(learner.parameters()))
    for (_, g_got), g_want in zip(got, want):
        torch.testing.assert_close(g_got, g_want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_the_graph_pass_benchmark_runs(tmp_path):
    from test_benchmarks import SCRIPT, run_script

    proc = run_script(SCRIPT.parent / "graph_pass.py", "--steps", "1", "--rounds", "1",
                      cwd=tmp_path)
    products = [line for line in proc.stdout.splitlines() if line.startswith("| [25, ")]
    assert len(products) == 24, proc.stdout
    row = [line for line in proc.stdout.splitlines() if line.startswith("| 1 |")]
    assert len(row) == 1 and int(row[0].split("|")[7]) > 0, proc.stdout  # nodes rewritten


@pytest.mark.slow
def test_the_step_breakdown_benchmark_runs(tmp_path):
    from test_benchmarks import SCRIPT, run_script

    proc = run_script(SCRIPT.parent / "step_breakdown.py", "--steps", "1", "--rounds", "1",
                      cwd=tmp_path, timeout=600)
    rows = [line for line in proc.stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| |")]
    assert len(rows) == 9, proc.stdout  # the Python wrapper's epoch among them
    assert any("cpp_wrapper': False" in row for row in rows), proc.stdout
    assert all(float(row.split("|")[2].split()[0]) > 0 for row in rows), proc.stdout


@pytest.mark.slow
def test_the_compile_options_benchmark_runs(tmp_path):
    from test_benchmarks import SCRIPT, run_script

    proc = run_script(SCRIPT.parent / "compile_options.py", "--steps", "1", "--rounds", "1",
                      "--no-cold-compile", cwd=tmp_path, timeout=600)
    rows = [line.split("|") for line in proc.stdout.splitlines() if line.startswith("| 1 |")]
    assert [row[2].strip() for row in rows] == ["`{}`", '`{"cpp_wrapper": false}`'], proc.stdout
    assert rows[0][4].strip().startswith("1.00x"), proc.stdout  # the first against itself
    assert float(rows[1][3].split()[0]) > 0, proc.stdout
