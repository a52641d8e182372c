"""sklmeta.show_versions() and the benchmarks' machine line, which reads the same info."""

import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
import torch

import sklmeta
from sklmeta import _show_versions

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def fake_cpuinfo(tmp_path, monkeypatch):
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nvendor_id\t: Nobody\nmodel name\t: Test CPU 9000 @ 1 GHz\n")
    monkeypatch.setattr(_show_versions, "_CPUINFO", str(path))
    return "Test CPU 9000 @ 1 GHz"


def parse(out):
    """show_versions' output as {block title: {key: value}}."""
    blocks, title = {}, None
    for line in out.splitlines():
        if not line.strip():
            continue
        if not line.startswith(" ") and line.endswith(":"):
            title = line[:-1]
            blocks[title] = {}
        else:
            key, value = line.split(": ", 1)
            blocks[title][key.strip()] = value
    return blocks


def test_exported():
    assert "show_versions" in sklmeta.__all__
    assert sklmeta.show_versions is _show_versions.show_versions


def test_show_versions_prints_system_dependencies_and_torch_build(capsys, fake_cpuinfo):
    sklmeta.show_versions()
    blocks = parse(capsys.readouterr().out)
    assert list(blocks) == ["System", "Python dependencies", "torch build"]

    system = blocks["System"]
    assert system["python"] == sys.version.replace("\n", " ")
    assert system["executable"] == sys.executable
    assert system["machine"] == platform.platform()
    assert system["cpu"] == fake_cpuinfo
    assert system["cores"] == str(os.cpu_count())
    assert 1 <= int(system["usable cores"]) <= os.cpu_count()
    assert system["torch threads"] == str(torch.get_num_threads())

    deps = blocks["Python dependencies"]
    assert deps["sklmeta"] == sklmeta.__version__
    for name in ["torch", "skorch", "scikit-learn", "numpy", "scipy", "pandas", "threadpoolctl"]:
        assert deps[name] == version(name), name
    assert set(_show_versions.OPTIONAL) <= set(deps)

    build = blocks["torch build"]
    assert build["CUDA available"] == str(torch.cuda.is_available())
    assert build["CUDA build"] == str(torch.version.cuda)


def test_torch_threads_are_read_when_called():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert _show_versions._get_sys_info()["torch threads"] == 1
    finally:
        torch.set_num_threads(before)


def test_missing_optional_dependency_is_none(monkeypatch):
    def fake_version(name):
        if name == "accelerate":
            raise PackageNotFoundError(name)
        return version(name)

    monkeypatch.setattr(_show_versions, "version", fake_version)
    deps = _show_versions._get_deps_info()
    assert deps["accelerate"] is None
    assert deps["torch"] == version("torch")


def test_cpu_name_without_cpuinfo_falls_back_to_platform(tmp_path, monkeypatch):
    monkeypatch.setattr(_show_versions, "_CPUINFO", str(tmp_path / "absent"))
    assert _show_versions._cpu_name() == (platform.processor() or platform.machine())


def test_benchmarks_machine_line_uses_show_versions_info(monkeypatch, fake_cpuinfo):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.delitem(sys.modules, "_machine", raising=False)
    import _machine

    assert _machine.cpu_name() == fake_cpuinfo
    line = _machine.machine_line()
    assert line.startswith(f"{platform.platform()}, {fake_cpuinfo}, {os.cpu_count()} CPUs")
    versions = _machine.versions_line()
    assert versions.startswith(f"python {platform.python_version()}, torch {version('torch')}")
    assert f"scikit-learn {version('scikit-learn')}" in versions
    assert versions.endswith(f"sklmeta {sklmeta.__version__}")
