"""Estimators' HTML representation links to their page in sklmeta's API reference.

scikit-learn draws a small "?" in an estimator's HTML repr (the diagram a notebook
shows) that links to the estimator's documentation. Which page it links to is set
by three class attributes of :class:`sklearn.base.BaseEstimator`
(``sklearn.utils._repr_html.base._HTMLDocumentationLinkMixin``):
``_doc_link_module`` (only classes of that top-level package get a link),
``_doc_link_template`` and ``_doc_link_url_param_generator``. By default they point
at scikit-learn's site, and classes outside ``sklearn`` get no link at all.

:class:`DocLinkMixin` points them at sklmeta's API reference. Put it before
``BaseEstimator`` in the bases: ``class TaskSplitter(DocLinkMixin, BaseEstimator)``.
"""

import itertools

__all__ = ["DOCS_URL", "DocLinkMixin", "public_path"]

#: The root of sklmeta's documentation site.
DOCS_URL = "https://sklmeta.readthedocs.io/en/latest/"

# autosummary writes one page per public name into docs/api/generated/ (see
# docs/api/index.rst), named by the name's public dotted path.
_API_PAGE = DOCS_URL + "api/generated/{path}.html"


def public_path(cls):
    """The dotted path under which ``cls`` is documented.

    A class exported by the top-level package (``sklmeta.__all__``) is documented
    as ``sklmeta.<name>`` wherever it is defined; any other class under the path
    of its module, up to the first private part (``sklmeta.baselines``).

    Parameters
    ----------
    cls : type
        A class defined in sklmeta.

    Returns
    -------
    str
        The dotted path of its API page, e.g. ``"sklmeta.MAMLClassifier"``.

    Examples
    --------
    >>> from sklmeta import TaskSplitter
    >>> from sklmeta._doc_link import public_path
    >>> from sklmeta.baselines import SkorchMLPRegressor
    >>> public_path(TaskSplitter), public_path(SkorchMLPRegressor)
    ('sklmeta.TaskSplitter', 'sklmeta.baselines.SkorchMLPRegressor')
    """
    import sklmeta  # late: this module is imported while sklmeta is being imported

    name = cls.__name__
    if name in sklmeta.__all__ and getattr(sklmeta, name, None) is cls:
        return f"sklmeta.{name}"
    module = ".".join(
        itertools.takewhile(lambda part: not part.startswith("_"), cls.__module__.split("."))
    )
    return f"{module}.{name}"


class DocLinkMixin:
    """Link an estimator's HTML repr to its page in sklmeta's API reference.

    Examples
    --------
    >>> from sklmeta import TaskSplitter
    >>> TaskSplitter()._get_doc_link()
    'https://sklmeta.readthedocs.io/en/latest/api/generated/sklmeta.TaskSplitter.html'
    """

    _doc_link_module = "sklmeta"
    _doc_link_template = _API_PAGE

    def _doc_link_url_param_generator(self):
        return {"path": public_path(type(self))}
