"""The eager meta-gradient two ways: autograd's backward against ``torch.func.grad_and_value``.

Why ``compile=False`` keeps autograd (issue 15): the pure-function meta-gradient
that ``compile=True`` compiles, ``torch.func.grad_and_value`` of the meta-loss
over a ``functional_call``, run eagerly, against ``torch.autograd.grad`` of the
same meta-loss (what ``loss.backward()`` in ``fit`` computes). Second-order MAML
on the MAML paper's sinusoid shapes (meta-batch 25, K=10+10, MLP 1-40-40-1 ReLU),
the hand-batched MLP inner loop that eager fits use; two interleaved rounds of
one second each; also prints the largest difference of the two meta-gradients.

Usage::

    python benchmarks/eager_grad_and_value.py 1        # inner steps
    python benchmarks/eager_grad_and_value.py 5
"""

import sys
import time

import torch
from torch.func import functional_call, grad_and_value

from sklmeta._core import EpisodeLoss, algorithms


def main(steps):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(1, 40), torch.nn.ReLU(), torch.nn.Linear(40, 40),
                              torch.nn.ReLU(), torch.nn.Linear(40, 1))
    algorithm = algorithms.maml(0.01, steps, steps)
    learner = algorithm.learner(net, 1)
    loss = EpisodeLoss("regression")
    T, K = 25, 10
    x = torch.rand(T, 2 * K, 1) * 10 - 5
    y = torch.sin(x[..., 0])
    batch = (x[:, :K], y[:, :K], x[:, K:], y[:, K:])
    params = dict(learner.named_parameters())

    class MetaLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.learner = learner

        def forward(self, *b):
            return algorithm.meta_loss(self.learner, *b, loss=loss)

    module = MetaLoss()
    names = {k: f"learner.{k}" for k in params}

    def pure(p, *b):
        value, reported, out = functional_call(module, p, b)
        return value, (reported, out)

    meta_grad = grad_and_value(pure, has_aux=True)

    def autograd_step():
        value, _, _ = algorithm.meta_loss(learner, *batch, loss=loss)
        return torch.autograd.grad(value, list(params.values()))

    def pure_step():
        grads, _ = meta_grad({names[k]: v.detach() for k, v in params.items()}, *batch)
        return [grads[names[k]] for k in params]

    diff = max(float((a - b).abs().max()) for a, b in zip(autograd_step(), pure_step()))
    print(f"inner steps {steps}; meta-gradients' largest difference {diff:.1e}")
    for name, step in [("autograd backward", autograd_step),
                       ("grad_and_value (eager)", pure_step)] * 2:
        step()
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < 1.0:
            step()
            n += 1
        print(f"{name}: {n / (time.perf_counter() - start):.0f} meta-gradients/s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
