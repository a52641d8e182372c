"""What to paste into a bug report: the system, torch's build and the dependencies' versions.

In the pattern of :func:`sklearn.show_versions`: :func:`show_versions` prints three
blocks, each from a function returning a dict that the benchmark scripts also use
(``benchmarks/_machine.py``) for the machine line of their reports.
"""

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version

# Distribution names (as pip knows them), the required ones first, then the optional
# ones (extras): a missing optional dependency shows as None.
REQUIRED = ("torch", "skorch", "scikit-learn", "numpy", "scipy", "pandas", "threadpoolctl")
OPTIONAL = ("matplotlib", "dask", "distributed", "accelerate")

_CPUINFO = "/proc/cpuinfo"  # Linux's; elsewhere the platform module's answer


def _cpu_name():
    """The CPU model name (``/proc/cpuinfo``), else what :mod:`platform` tells."""
    try:
        with open(_CPUINFO) as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _usable_cores():
    """The cores this process may run on (its CPU affinity), else all of them."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no sched_getaffinity off Linux
        return os.cpu_count()


def _get_sys_info():
    """System information.

    Returns
    -------
    sys_info : dict
        ``python`` (version), ``executable``, ``machine`` (:func:`platform.platform`),
        ``cpu`` (model name), ``cores`` (:func:`os.cpu_count`), ``usable cores`` (the
        process's CPU affinity) and ``torch threads`` (:func:`torch.get_num_threads`).
    """
    import torch

    return {
        "python": sys.version.replace("\n", " "),
        "executable": sys.executable,
        "machine": platform.platform(),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "usable cores": _usable_cores(),
        "torch threads": torch.get_num_threads(),
    }


def _get_deps_info():
    """Installed versions of sklmeta and its dependencies, from the package metadata.

    Returns
    -------
    deps_info : dict
        Distribution name -> version string; None for an optional dependency that is
        not installed (a required one missing shows as None too: sklmeta would not
        import, but this function does not need it to).
    """
    from . import __version__

    deps_info = {"sklmeta": __version__}
    for name in REQUIRED + OPTIONAL:
        try:
            deps_info[name] = version(name)
        except PackageNotFoundError:
            deps_info[name] = None
    return deps_info


def _get_torch_info():
    """torch's build: whether it sees a CUDA device, and which CUDA it was built for.

    Returns
    -------
    torch_info : dict
        ``CUDA available``, ``CUDA build`` (``torch.version.cuda``, None for a CPU
        build), ``CUDA devices`` (0 without CUDA), and ``MPS available`` (Apple GPUs).
    """
    import torch

    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None)
    return {
        "CUDA available": cuda,
        "CUDA build": torch.version.cuda,
        "CUDA devices": torch.cuda.device_count() if cuda else 0,
        "MPS available": bool(mps is not None and mps.is_available()),
    }


def show_versions():
    """Print the system, torch's build and the versions of sklmeta's dependencies.

    Paste its output into a bug report. The optional dependencies (matplotlib, dask,
    distributed, accelerate) show as None where they are not installed.

    See Also
    --------
    sklearn.show_versions : The scikit-learn function this one follows.

    Examples
    --------
    >>> import sklmeta
    >>> sklmeta.show_versions()  # doctest: +ELLIPSIS
    System:
            python: 3...
    ...
     torch threads: ...
    <BLANKLINE>
    Python dependencies:
           sklmeta: ...
             torch: 2...
            skorch: 1...
      scikit-learn: 1...
    ...
    <BLANKLINE>
    torch build:
    CUDA available: ...
    """
    blocks = [("System", _get_sys_info()), ("Python dependencies", _get_deps_info()),
              ("torch build", _get_torch_info())]
    for i, (title, info) in enumerate(blocks):
        if i:
            print()
        print(f"{title}:")
        for key, value in info.items():
            print(f"{key:>14}: {value}")
