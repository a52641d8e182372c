"""What the benchmark scripts print about the machine they ran on.

One source for it, shared with ``sklmeta.show_versions()``: the dicts of
``sklmeta/_show_versions.py`` (system, dependencies, torch's build), so a report's
machine line and a bug report's ``show_versions()`` say the same things the same way.
"""

import ast
import os
import shlex
import sys
import time

import torch

import sklmeta
from sklmeta._show_versions import _cpu_name, _get_deps_info, _get_sys_info, _get_torch_info


def status_bytes(field):
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in bytes; None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def cpu_name():
    """The CPU model, where the platform tells it."""
    return _cpu_name()


def machine_line():
    """``<platform>, <CPU model>, <n> CPUs`` (and the usable ones, where fewer)."""
    info = _get_sys_info()
    cpus = f"{info['cores']} CPUs"
    if info["usable cores"] != info["cores"]:
        cpus += f" ({info['usable cores']} usable)"
    line = f"{info['machine']}, {info['cpu']}, {cpus}"
    cuda = _get_torch_info()
    if cuda["CUDA available"]:
        line += f", {cuda['CUDA devices']} CUDA device(s) (CUDA {cuda['CUDA build']})"
    return line


def versions_line():
    """``python X, torch Y, skorch Z, scikit-learn W, sklmeta V``."""
    info, deps = _get_sys_info(), _get_deps_info()
    python = info["python"].split()[0]
    names = ["torch", "skorch", "scikit-learn", "sklmeta"]
    return f"python {python}, " + ", ".join(f"{name} {deps[name]}" for name in names)


def inductor_cache_line():
    """Where torch.compile's inductor keeps built kernels, and whether it was empty.

    A compile that finds its C++ kernels built (by an earlier run, or by an
    earlier compile of the same process) takes seconds; one that builds them, on
    2 cores, takes tens of seconds: compile times are read against this line.
    """
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    path = cache_dir()
    n = sum(len(files) for _, _, files in os.walk(path)) if os.path.isdir(path) else 0
    state = ("empty at the start (cold: every kernel is built)" if n == 0
             else f"{n} files at the start (warm: kernels built before are found)")
    return f"inductor cache (TORCHINDUCTOR_CACHE_DIR): {path}, {state}"


def empty_cache_env(folder):
    """``os.environ`` for a child process whose torch.compile starts from nothing.

    Both of inductor's folders point at ``folder`` (an empty temporary one): its
    cache of built kernels (``TORCHINDUCTOR_CACHE_DIR``), and the temporary folder
    (``TMPDIR``), under which inductor keeps the C++ headers it precompiles
    (150 MB) whatever the cache folder says. A run in the same ``folder`` again
    finds what the first built: a warm cache.
    """
    return {**os.environ, "TORCHINDUCTOR_CACHE_DIR": folder, "TMPDIR": folder}


def run_lines():
    """The lines every timing report opens with: machine, versions, code, command, date."""
    return [f"- machine: {machine_line()}; {torch.get_num_threads()} torch thread(s)",
            f"- {versions_line()}",
            f"- sklmeta from {os.path.dirname(sklmeta.__file__)} "
            "(PYTHONPATH=. times a checkout's own)",
            f"- command: `python {' '.join(shlex.quote(a) for a in sys.argv)}`",
            f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"]


def literal_settings(items):
    """``{PARAM: value}`` of ``--set PARAM=VALUE`` items: Python literals, else strings."""
    settings = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            pass
        settings[key] = value
    return settings
