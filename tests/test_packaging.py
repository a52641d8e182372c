"""The packaging metadata, checked without a build or the network.

What needs a build (LICENSE inside the wheel, tests/ inside the sdist, the wheel's
console script in a clean venv) and the minimum versions themselves are .ci/run's.
"""

import ast
import configparser
import fnmatch
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
MIN_CONSTRAINTS = ROOT / ".ci" / "min-constraints.txt"
# The one pin of the constraints file that is not its floor: torch stays at the CPU build
# these machines install (README); its floor is below it.
NOT_AT_FLOOR = {"torch": "2.13.0"}
# import name -> distribution name, where they differ
DISTRIBUTION = {"sklearn": "scikit-learn"}


def setup_cfg():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg


def lines(value):
    """The entries of a multi-line setup.cfg value, comments and blanks dropped."""
    return [s for s in (line.split("#", 1)[0].strip() for line in value.splitlines()) if s]


def install_requires():
    return [Requirement(s) for s in lines(setup_cfg()["options"]["install_requires"])]


def extras():
    section = setup_cfg()["options.extras_require"]
    return {name: [Requirement(s) for s in lines(section[name])] for name in section}


def constraints():
    pins = {}
    for line in lines(MIN_CONSTRAINTS.read_text()):
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", line
        assert req.name not in pins, f"{req.name} pinned twice"
        pins[req.name] = Version(spec.version)
    return pins


def floor(req):
    """The version of a requirement's one ``>=`` specifier."""
    specs = list(req.specifier)
    assert [s.operator for s in specs] == [">="], f"{req}: want exactly one >= floor"
    return Version(specs[0].version)


# ------------------------------------------------------------------ the licence
def test_license_file_is_bsd_3_clause():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License")
    assert "Copyright (c) 2026, the sklmeta developers" in text
    # the three clauses, the third being what makes it 3-clause rather than 2-clause
    assert "1. Redistributions of source code must retain" in text
    assert "2. Redistributions in binary form must reproduce" in text
    assert "3. Neither the name of the copyright holder nor the names of its" in text
    assert "4." not in text  # not the original 4-clause (advertising) licence


def test_license_declared_and_shipped():
    meta = setup_cfg()["metadata"]
    # PEP 639's License-Expression (setuptools >= 77), not the legacy free-text license
    assert meta["license_expression"] == "BSD-3-Clause"
    assert "license" not in meta
    assert "LICENSE" in lines(meta["license_files"])


# -------------------------------------------------------------- the classifiers
def test_classifiers():
    cfg = setup_cfg()
    classifiers = lines(cfg["metadata"]["classifiers"])
    # The licence is in License-Expression: setuptools refuses License :: classifiers
    # beside it (PEP 639 supersedes them).
    assert not [c for c in classifiers if c.startswith("License ::")]
    assert "Operating System :: OS Independent" in classifiers
    python_requires = SpecifierSet(cfg["options"]["python_requires"])
    declared = sorted(
        Version(c.rsplit(" :: ", 1)[1]) for c in classifiers
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    )
    assert declared, "no Programming Language :: Python :: 3.x classifier"
    # every classified version is allowed, the lowest allowed one is classified, and
    # the list has no gap up to the highest, at least 3.13
    assert all(python_requires.contains(v) for v in declared), (declared, python_requires)
    assert not python_requires.contains(f"3.{declared[0].minor - 1}")
    assert declared[-1] >= Version("3.13")
    assert declared == [Version(f"3.{m}") for m in range(declared[0].minor, declared[-1].minor + 1)]


# ------------------------------------------------------------------ the sdist
@pytest.mark.parametrize("folder", ["tests", "examples", "benchmarks"])
def test_manifest_puts_folder_in_sdist(folder):
    rules = [line.split() for line in lines((ROOT / "MANIFEST.in").read_text())]
    patterns = [r[2:] for r in rules if r[:2] == ["recursive-include", folder]]
    assert patterns, f"MANIFEST.in has no recursive-include {folder}"
    files = [p for p in (ROOT / folder).rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and p.suffix in {".py", ".md"}]
    assert files
    for path in files:
        assert any(fnmatch.fnmatch(path.name, pat) for pats in patterns for pat in pats), path


def test_manifest_ships_what_this_test_reads():
    # An unpacked sdist's test run reads these (setuptools adds setup.cfg itself).
    included = {name for line in lines((ROOT / "MANIFEST.in").read_text())
                if line.split()[0] == "include" for name in line.split()[1:]}
    assert {"LICENSE", "MANIFEST.in", ".ci/min-constraints.txt"} <= included


# ---------------------------------------------------------- the dependency floors
def test_every_floor_is_pinned_in_the_min_constraints():
    pins = constraints()
    requires = {req.name: floor(req) for req in install_requires()}
    assert set(pins) == set(requires), "setup.cfg's install_requires and .ci/min-constraints.txt"
    for name, low in requires.items():
        if name in NOT_AT_FLOOR:
            assert pins[name] == Version(NOT_AT_FLOOR[name]) >= low, name
        else:
            assert pins[name] == low, f"{name}: floor {low} in setup.cfg, {pins[name]} pinned"


def test_skorch_floor_holds_pickling_and_tags():
    # skorch 1.0 and 1.1 break pickling and the scikit-learn tags of the estimators
    (skorch,) = [req for req in install_requires() if req.name == "skorch"]
    assert floor(skorch) >= Version("1.2")


def _third_party_imports():
    """{distribution: imported at module level?} over every module of sklmeta/."""
    found = {}
    for path in (ROOT / "sklmeta").rglob("*.py"):
        tree = ast.parse(path.read_text())
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                module = name.split(".")[0]
                if module in sys.stdlib_module_names:
                    continue
                dist = DISTRIBUTION.get(module, module)
                found[dist] = found.get(dist, False) or id(node) in top
    return found


def test_imported_distributions_are_declared_and_declared_ones_imported():
    imports = _third_party_imports()
    required = {req.name for req in install_requires()}
    optional = {req.name for reqs in extras().values() for req in reqs}
    at_module_level = {dist for dist, top in imports.items() if top}
    assert at_module_level - {"sklmeta"} <= required, "imported on `import sklmeta`, undeclared"
    assert set(imports) - {"sklmeta"} <= required | optional, "imported but in no extra"
    # nothing declared that sklmeta does not import itself (tqdm comes with skorch), but
    # what pandas imports for sklmeta's own calls: tabulate, for DataFrame.to_markdown
    through_pandas = {"tabulate"}
    assert required - through_pandas <= set(imports), (
        f"declared, never imported: {required - through_pandas - set(imports)}")
