"""An inductor graph pass for the compiled meta-step: products and sums in memory order.

Two rewrites of the post-gradient ATen graph inductor compiles, each the same
arithmetic in another order (results agree to float rounding), each on CPU
tensors only (cuBLAS and GPU reductions have no such slow paths that this
project has measured):

- **Batched products turned round** (:func:`_turn_round`). A meta-step's batched
  matrix products come in both orientations: ``bmm(A, B)`` with an output
  ``[tasks, m, n]`` where ``n`` is the support size and ``m`` a layer's width (a
  second-order meta-gradient's products of per-task weights and activations), and
  its transpose. With torch 2.13.0's MKL (measured on an AMD EPYC) a product whose
  output has few columns runs 3-5x slower than the same product turned round:
  ``[25, 40, 40] @ [25, 40, 10]`` took 27-76 microseconds (by the inputs' layouts),
  ``[25, 10, 40] @ [25, 40, 40]`` 13-15; with 512-wide layers, 2.5-29 ms against
  2.3-2.5. So every ``bmm`` whose output has fewer columns than rows, and at most
  :data:`NARROW` (32) columns, is computed as ``bmm(B^T, A^T)``, and its consumers
  read the transpose of that (a view, no copy). Not wider ones: with 40 columns
  (``[25, 100, 100] @ [25, 100, 40]``) the two orientations took the same time to
  2%, so nothing is to be gained there, and one early timing (not repeated) had
  one layout of it 1.5x slower turned round (``benchmarks/graph_pass.py``).
  torch.func's graph of the MAML paper's meta-step has 4 such products at 1 inner
  step and 24 at 5.
- **Sums over tasks in memory order** (:func:`_sum_in_memory_order`). The sum over
  the tasks of a ``[tasks, r, c]`` tensor laid out transposed (a per-task weight's
  gradient, ``nn.Linear`` keeping weights as ``[out, in]``) is computed on its
  transpose, which is contiguous, and transposed back: inductor's kernel for the
  first read the tensor across its rows, one float at a time (20 microseconds for
  ``[25, 40, 40]``, the second's a few).

On the MAML paper's sinusoids the two took compiled torch.func's meta-gradient from
342 to 257 microseconds at 1 inner step and from 1.35 to 0.97 ms at 5
(``benchmarks/graph_pass.py``; ``benchmarks/RESULTS.md``, "the compiled graph in
memory order").

:func:`layout_pass` is the pass, given to inductor as ``post_grad_custom_post_pass``
by :func:`inductor_options`.
"""

import functools

import torch

__all__ = ["inductor_options", "layout_pass"]


_T = [0, 2, 1]  # a 3-D tensor's transpose: a view
NARROW = 32  # the most columns of a product's output turned round (see the module docstring)


def _call_transposed(graph, node, target, inputs, *rest):
    """Replace ``node`` by ``target(*(t^T for t in inputs), *rest)^T``, with their meta values."""
    permute = torch.ops.aten.permute.default
    with graph.inserting_before(node):
        turned = [graph.call_function(permute, (t, _T)) for t in inputs]
        inner = graph.call_function(target, (*turned, *rest))
        new = graph.call_function(permute, (inner, _T))
    for t, tt in zip(inputs, turned):
        tt.meta["val"] = t.meta["val"].permute(*_T)
    inner.meta["val"] = target(*(tt.meta["val"] for tt in turned), *rest)
    new.meta["val"] = inner.meta["val"].permute(*_T)
    node.replace_all_uses_with(new)
    graph.erase_node(node)


def _cpu_values(*nodes):
    """The meta values of ``nodes``, or None unless all are graph nodes with CPU values."""
    vals = [n.meta.get("val") if isinstance(n, torch.fx.Node) else None for n in nodes]
    if any(v is None or not isinstance(v, torch.Tensor) or v.device.type != "cpu"
           for v in vals):
        return None
    return vals


def _turn_round(graph):
    """``graph``'s CPU ``bmm`` with a narrow output computed turned round; returns how many."""
    turned = 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target is not torch.ops.aten.bmm.default:
            continue
        vals = _cpu_values(node, *node.args)
        if vals is None:
            continue
        rows, columns = vals[0].shape[1:]
        if columns >= rows or columns > NARROW:
            continue
        a, b = node.args
        _call_transposed(graph, node, node.target, (b, a))  # (A B)^T = B^T A^T
        turned += 1
    return turned


def _sum_in_memory_order(graph):
    """``graph``'s sums over dim 0 of transposed 3-D CPU tensors, in memory order; how many."""
    turned = 0
    for node in list(graph.nodes):
        if (node.op != "call_function" or node.target is not torch.ops.aten.sum.dim_IntList
                or len(node.args) != 3 or node.kwargs):
            continue
        x, dims, keepdim = node.args
        vals = _cpu_values(x)
        if (vals is None or vals[0].dim() != 3 or list(dims) != [0] or keepdim is not True
                or not vals[0].stride(1) < vals[0].stride(2)):
            continue
        _call_transposed(graph, node, node.target, (x,), [0], True)
        turned += 1
    return turned


@functools.cache
def layout_pass():
    """Both rewrites, one inductor ``CustomGraphPass`` (built once: importing inductor is slow)."""
    from torch._inductor.custom_graph_pass import CustomGraphPass, get_hash_for_files

    class LayoutPass(CustomGraphPass):
        """Products and sums in memory order (see :mod:`sklmeta._core.graph_pass`)."""

        def __init__(self):
            self.turned = 0  # nodes rewritten, over every graph this process compiled

        def __call__(self, graph):
            self.turned += _turn_round(graph) + _sum_in_memory_order(graph)

        def uuid(self):  # inductor's cache key: this file's contents
            return get_hash_for_files((__file__,))

    return LayoutPass()


def inductor_options(options, cpu=False):
    """``torch.compile``'s keywords ``options``, with :func:`layout_pass` added for inductor.

    Added where inductor compiles (no ``backend``, or ``"inductor"``) and the
    keywords do not set ``mode`` (torch.compile takes ``mode`` or ``options``,
    not both), nor a ``post_grad_custom_post_pass`` of their own; ``options`` is
    not changed. With ``cpu`` (a graph on CPU tensors only), inductor's C++
    wrapper too (``cpp_wrapper=True``, unless the keywords set it): the graph's
    kernels, its ``bmm`` calls and its buffers called from one compiled C++
    function instead of inductor's generated Python (see
    :mod:`sklmeta._core.compiled`).
    """
    if options.get("backend", "inductor") != "inductor" or options.get("mode") is not None:
        return options
    inner = dict(options.get("options") or {})
    inner.setdefault("post_grad_custom_post_pass", layout_pass())
    if cpu:
        inner.setdefault("cpp_wrapper", True)
    return {**options, "options": inner}
