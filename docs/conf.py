"""Sphinx configuration of sklmeta's documentation.

Build (warnings are errors): ``docs/build.sh``, i.e.
``sphinx-build -W --keep-going -b html docs docs/_build/html``.
The gallery runs ``examples/plot_*.py``; with ``SKLMETA_EXAMPLES_QUICK=1`` in the
environment (what CI sets) the examples run at a reduced budget.
"""

import os
import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the checkout's sklmeta, installed or not

import sklmeta  # noqa: E402
from sklmeta._doc_link import DOCS_URL  # noqa: E402

project = "sklmeta"
author = "the sklmeta developers"
copyright = "the sklmeta developers"
release = sklmeta.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip"]
root_doc = "index"
html_baseurl = DOCS_URL

# --- API reference: one generated page per public name (docs/api/generated/),
# the path that sklmeta._doc_link.DocLinkMixin links estimators' HTML repr to.
autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
autodoc_typehints = "none"
# numpydoc's own member tables would list every method a second time.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# Attributes sections stay a table, not a second set of object descriptions.
numpydoc_attributes_as_param_list = True
# Resolve "array-like", "default=None" and friends in parameter types as plain text.
numpydoc_xref_param_type = False

# --- The gallery: examples/plot_*.py, run at build time.
# The examples save their figure to SKLMETA_EXAMPLES_OUT (default: the current
# directory, which sphinx-gallery sets to examples/); keep that out of the checkout.
os.environ.setdefault("SKLMETA_EXAMPLES_OUT", tempfile.mkdtemp(prefix="sklmeta-gallery-"))
# Tiny tensors: intra-op threads only add overhead (README, Speed).
os.environ.setdefault("OMP_NUM_THREADS", "1")

sphinx_gallery_conf = {
    "examples_dirs": str(HERE.parent / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",
    "ignore_pattern": r"__init__\.py",
    "doc_module": ("sklmeta",),
    "backreferences_dir": "api/generated/backreferences",
    "reference_url": {"sklmeta": None},
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "show_memory": False,
    "min_reported_time": 1,
}

html_theme = "pydata_sphinx_theme"
html_title = f"sklmeta {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_prev_next": False,
    "header_links_before_dropdown": 5,
}
html_static_path = []
html_show_sourcelink = False


# Methods inherited from scikit-learn (get_params, set_params, score, the
# metadata-routing setters) carry cross-references into scikit-learn's own user
# guide and glossary (:ref:`metadata_routing`, :term:`meta-estimator`), which do
# not exist here (and intersphinx would need the network). Keep their text,
# drop the link.
_FOREIGN_ROLE = re.compile(r":(?:ref|term):`([^`<]*?)\s*(?:<[^>]*>)?`")


def _unlink_foreign_refs(app, what, name, obj, options, lines):
    module = getattr(obj, "__module__", None) or ""
    if module.split(".")[0] == "sklmeta":
        return
    lines[:] = [_FOREIGN_ROLE.sub(r"*\1*", line) for line in lines]


def setup(app):
    app.connect("autodoc-process-docstring", _unlink_foreign_refs)
