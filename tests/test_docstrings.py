"""numpydoc's validation over sklmeta's public API.

As scikit-learn (``sklearn/tests/test_docstrings.py``) and imbalanced-learn
(``imblearn/tests/test_docstring_parameters.py``) do: ``numpydoc.validate.validate``
on every public class and function and on every public method of those classes,
one test per name, so a failure names the object, the error code and the file the
docstring lives in.

Public names: ``sklmeta.__all__`` and the ``__all__`` of ``sklmeta.model_selection``,
``sklmeta.datasets``, ``sklmeta.baselines`` and ``sklmeta.automl``. Methods: those written in sklmeta
(inherited scikit-learn methods such as ``get_params`` are scikit-learn's
docstrings), and ``fit``, ``adapt``, ``score``, ``predict``, ``predict_proba``
wherever they come from.

Error codes ignored (numpydoc's list:
https://numpydoc.readthedocs.io/en/latest/validation.html#built-in-validation-checks):

- everywhere, as scikit-learn does: ``GL01`` and ``GL02`` (where the summary
  starts and blank lines around it: a layout choice), ``RT02`` (the first line of
  Returns may name the returned value, ``self : object``);
- for methods only: ``ES01`` (extended summary), ``SA01`` (See Also) and ``EX01``
  (Examples); the class docstring carries them.

Nothing else is ignored: in particular every parameter must be documented and
described (``PR01``, ``PR07``) and every return value described (``RT01``,
``RT03``), for ``fit``, ``adapt``, ``score``, ``predict`` and ``predict_proba``
as for everything else.
"""

import importlib
import inspect

import pytest
from numpydoc.validate import validate

PUBLIC_MODULES = ("sklmeta", "sklmeta.model_selection", "sklmeta.datasets", "sklmeta.baselines",
                  "sklmeta.automl")

# The methods every estimator's user calls; validated even where inherited.
CORE_METHODS = ("fit", "adapt", "score", "predict", "predict_proba")

IGNORED = {"GL01", "GL02", "RT02"}
IGNORED_FOR_METHODS = {"ES01", "SA01", "EX01"}


def _defined_in_sklmeta(member):
    func = member.fget if isinstance(member, property) else member
    return (getattr(func, "__module__", None) or "").split(".")[0] == "sklmeta"


def public_names():
    """``(dotted name, is_method)`` for every public object and method, sorted."""
    names = set()
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.ismodule(obj):
                continue  # documented through its own public names
            path = f"{module_name}.{name}"
            names.add((path, False))
            if not inspect.isclass(obj):
                continue
            for attr, member in inspect.getmembers(obj):
                if attr.startswith("_"):
                    continue
                if not (callable(member) or isinstance(member, property)):
                    continue
                if attr in CORE_METHODS or _defined_in_sklmeta(member):
                    names.add((f"{path}.{attr}", True))
    return sorted(names)


PUBLIC_NAMES = public_names()


def numpydoc_errors(name, is_method):
    """The (code, message) pairs numpydoc finds for ``name``, less the ignored codes."""
    result = validate(name)
    ignored = IGNORED | (IGNORED_FOR_METHODS if is_method else set())
    where = f"{result['file']}:{result['file_line']}"
    return where, [(code, msg) for code, msg in result["errors"] if code not in ignored]


def test_the_public_api_is_collected():
    # The parametrisation below is not empty, and reaches into every public module
    # and into methods, inherited ones included.
    names = {name for name, _ in PUBLIC_NAMES}
    for expected in ("sklmeta.MAMLClassifier", "sklmeta.MAMLClassifier.fit",
                     "sklmeta.MAMLClassifier.adapt", "sklmeta.AdaptedClassifier.predict_proba",
                     "sklmeta.TaskSplitter.split", "sklmeta.model_selection.compare",
                     "sklmeta.datasets.make_sinusoid_tasks",
                     "sklmeta.baselines.SkorchMLPClassifier.score", "sklmeta.save"):
        assert expected in names
    assert "sklmeta.MAMLClassifier.get_metadata_routing" not in names  # scikit-learn's docstring
    assert "sklmeta.MAMLClassifier.get_params" in names  # sklmeta's (skorch's prefixes)


def test_numpydoc_errors_are_found():
    # The check itself can fail: an undocumented parameter and return value.
    def f(x):
        """Do something.

        Returns
        -------
        int
        """

    f.__module__ = __name__
    globals()["_undocumented_example"] = f
    _, errors = numpydoc_errors(f"{__name__}._undocumented_example", is_method=True)
    codes = {code for code, _ in errors}
    assert {"PR01", "RT03"} <= codes


@pytest.mark.parametrize("name, is_method", PUBLIC_NAMES, ids=[n for n, _ in PUBLIC_NAMES])
def test_docstring(name, is_method):
    where, errors = numpydoc_errors(name, is_method)
    assert not errors, f"{name} ({where}):\n" + "\n".join(
        f"  {code}: {msg}" for code, msg in errors
    )
