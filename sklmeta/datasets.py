"""Task families for meta-learning.

- :func:`make_sinusoid_tasks`: the sinusoid regression tasks of the MAML paper.
- :func:`make_classification_tasks`: binary tasks whose decision boundaries all
  live in one low-dimensional subspace shared by every task, the other features
  noise; the structure a meta-learner can discover and a single-task learner
  cannot from a handful of examples.

Both return a list of ``(X, y)`` task datasets, ready for ``fit(tasks)``.
"""

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["make_sinusoid_tasks", "make_classification_tasks"]


def make_sinusoid_tasks(n_tasks=1000, n_samples=50, *, amplitude_range=(0.1, 5.0),
                        phase_range=(0.0, np.pi), x_range=(-5.0, 5.0), noise=0.0,
                        return_params=False, random_state=None):
    """Sinusoid regression tasks ``y = A sin(x - phi)`` (Finn et al., 2017).

    Each task draws its own amplitude ``A`` and phase ``phi``, then ``n_samples``
    points ``x``; a few-shot learner sees a handful of them and must find the
    whole sine wave.

    Parameters
    ----------
    n_tasks : int, default=1000
        Number of tasks.
    n_samples : int, default=50
        Points per task, ``x`` uniform in ``x_range``.
    amplitude_range, phase_range, x_range : tuple of float
        The paper's protocol: amplitude U[0.1, 5], phase U[0, pi], x U[-5, 5].
    noise : float, default=0.0
        Standard deviation of Gaussian noise added to ``y``.
    return_params : bool, default=False
        Also return the amplitudes and phases.
    random_state : int, RandomState instance or None, default=None
        Seeds the amplitudes, phases, points and noise.

    Returns
    -------
    tasks : list of (X, y)
        ``X`` of shape (n_samples, 1), ``y`` of shape (n_samples,).
    amplitudes, phases : ndarray of shape (n_tasks,)
        Only when ``return_params``.

    See Also
    --------
    make_classification_tasks : Binary classification tasks that share a subspace.

    References
    ----------
    Finn, Abbeel and Levine, "Model-Agnostic Meta-Learning for Fast Adaptation of
    Deep Networks", ICML 2017, section 5.1.

    Examples
    --------
    >>> from sklmeta.datasets import make_sinusoid_tasks
    >>> tasks = make_sinusoid_tasks(n_tasks=3, n_samples=20, random_state=0)
    >>> len(tasks), tasks[0][0].shape, tasks[0][1].shape
    (3, (20, 1), (20,))
    """
    rng = check_random_state(random_state)
    amplitudes = rng.uniform(*amplitude_range, size=n_tasks)
    phases = rng.uniform(*phase_range, size=n_tasks)
    tasks = []
    for a, p in zip(amplitudes, phases):
        x = rng.uniform(*x_range, size=(n_samples, 1))
        y = a * np.sin(x[:, 0] - p) + noise * rng.standard_normal(n_samples)
        tasks.append((x, y))
    if return_params:
        return tasks, amplitudes, phases
    return tasks


def make_classification_tasks(n_tasks=100, n_samples=100, *, n_features=40, n_informative=4,
                              shuffle_features=True, random_state=None):
    """Binary tasks that share an informative subspace.

    Every task draws ``X`` from a standard normal in ``n_features`` dimensions; its
    label is the side of a random hyperplane through the origin *inside* the
    first ``n_informative`` dimensions (the same subspace for all tasks; with
    ``shuffle_features`` those columns sit at one fixed random set of
    positions). The remaining features are pure noise. Classes are balanced.

    From 5 examples a single-task learner cannot tell signal from noise in 40
    dimensions; a meta-learner can learn which features matter from the task
    family.

    Parameters
    ----------
    n_tasks : int, default=100
        Number of tasks.
    n_samples : int, default=100
        Samples per task, half of each class (must be even).
    n_features : int, default=40
        Features per sample, informative and noise together.
    n_informative : int, default=4
        Dimension of the subspace that holds every task's decision boundary.
    shuffle_features : bool, default=True
        Place the informative columns at random (fixed across tasks).
    random_state : int, RandomState instance or None, default=None
        Seeds the columns' order, the hyperplanes and the samples.

    Returns
    -------
    tasks : list of (X, y)
        ``X`` of shape (n_samples, n_features), ``y`` in {0, 1}.

    See Also
    --------
    make_sinusoid_tasks : Sinusoid regression tasks.
    sklearn.datasets.make_classification : One classification dataset.

    Examples
    --------
    >>> import numpy as np
    >>> from sklmeta.datasets import make_classification_tasks
    >>> tasks = make_classification_tasks(n_tasks=2, n_samples=10, random_state=0)
    >>> tasks[0][0].shape, np.bincount(tasks[0][1]).tolist()
    ((10, 40), [5, 5])
    """
    if n_samples % 2:
        raise ValueError(f"n_samples must be even (balanced classes); got {n_samples}.")
    if not 1 <= n_informative <= n_features:
        raise ValueError(
            f"n_informative must be in [1, n_features={n_features}]; got {n_informative}."
        )
    rng = check_random_state(random_state)
    columns = rng.permutation(n_features) if shuffle_features else np.arange(n_features)
    half = n_samples // 2
    tasks = []
    for _ in range(n_tasks):
        w = rng.standard_normal(n_informative)
        w /= np.linalg.norm(w)
        X = rng.standard_normal((n_samples, n_features))
        # Reflect points onto the side of their class: exact balance, same distribution.
        side = X[:, :n_informative] @ w
        y = np.repeat([0, 1], half)
        flip = (side > 0) != (y == 1)
        X[flip, :n_informative] -= 2 * side[flip, None] * w
        order = rng.permutation(n_samples)
        tasks.append((X[order][:, np.argsort(columns)], y[order]))
    return tasks
