#!/usr/bin/env bash
# Build the documentation site into docs/_build/html, warnings as errors, running
# the gallery (examples/plot_*.py), then check that every estimator's HTML-repr
# link has its page. From the repository root, with ".[docs]" installed:
#
#   docs/build.sh                            # the gallery at its full budget
#   SKLMETA_EXAMPLES_QUICK=1 docs/build.sh   # a reduced budget (what CI runs)
#
# Extra arguments go to sphinx-build. The build starts clean (a stale gallery or
# API stub would hide a warning).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf docs/_build docs/auto_examples docs/api/generated docs/sg_execution_times.rst
# Tiny tensors: intra-op threads only add overhead (README, Speed).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
python -m sphinx -W --keep-going -b html docs docs/_build/html "$@"
python docs/check_doc_links.py docs/_build/html
