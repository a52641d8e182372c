"""Check, on a built site, that every estimator's HTML-repr link has its page.

``python docs/check_doc_links.py docs/_build/html`` (``docs/build.sh`` runs it):
for every public estimator class, ``_get_doc_link()`` (sklmeta._doc_link) is
mapped from the published URL to the built site, and the page must exist there.
Exits 1, naming the estimators whose link is empty or whose page is missing.
"""

import importlib
import inspect
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's sklmeta

import torch  # noqa: E402
from sklearn.base import BaseEstimator  # noqa: E402

from sklmeta import MAMLClassifier  # noqa: E402
from sklmeta._doc_link import DOCS_URL  # noqa: E402

PUBLIC_MODULES = ("sklmeta", "sklmeta.model_selection", "sklmeta.datasets", "sklmeta.baselines")


def instance(cls):
    if cls.__name__ == "FineTunedRegressor":
        return cls(module=torch.nn.Linear(1, 1))
    if cls.__name__.startswith("Adapted"):
        return cls(MAMLClassifier())
    if cls.__name__ == "PerSupport":  # wraps an estimator fit on each support set
        from sklearn.neighbors import KNeighborsClassifier

        return cls(KNeighborsClassifier(1))
    return cls()


def problems(html_dir):
    found = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            cls = getattr(module, name)
            if not (inspect.isclass(cls) and issubclass(cls, BaseEstimator)):
                continue
            url = instance(cls)._get_doc_link()
            if not url.startswith(DOCS_URL):
                found.append(f"{module_name}.{name}: link {url!r} is not under {DOCS_URL}")
            elif not (html_dir / url[len(DOCS_URL):]).is_file():
                found.append(f"{module_name}.{name}: {url} has no page in {html_dir}")
    return found


if __name__ == "__main__":
    html = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/_build/html")
    bad = problems(html)
    print("\n".join(bad) if bad else f"every estimator's doc link has its page in {html}")
    sys.exit(1 if bad else 0)
