"""``python -m sklmeta``: see :func:`sklmeta._cli.main.main`."""

from ._cli import main

if __name__ == "__main__":  # not when imported, e.g. by pytest --doctest-modules
    raise SystemExit(main())
