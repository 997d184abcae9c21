#!/usr/bin/env bash
# Run the test suite once per Keras backend (Keras fixes its backend when first imported).
# Tests of backend-dependent code (layers, builders, fit loops, export, distribution,
# serving of models trained on each backend) run on every backend; tests marked
# backend_neutral (config, CLI parsing, data loading, search spaces and search
# orchestration, NumPy scores) run on the first backend only.
# Tests run in PYTEST_WORKERS processes (pytest-xdist; default: the CPUs, at most 4; 0 runs
# them in this process): a small model's fit is mostly Python, one core's work.
# --dist loadgroup keeps the tests of one shared module-scoped run on one worker (conftest).
# Usage: bash tests/all-backends.sh [pytest arguments]; KERAS_BACKENDS="jax" limits the
# set (its first backend then runs the neutral tests too).
set -euo pipefail
backends=${KERAS_BACKENDS:-"tensorflow jax torch"}
workers=${PYTEST_WORKERS:-$(python -c "import os; print(min(4, os.cpu_count() or 1))")}
first=1
for backend in $backends; do
  if [ "$first" = 1 ]; then
    echo "=== pytest on the $backend backend (every test, $workers workers)"
    KERAS_BACKEND=$backend python -m pytest -n "$workers" --dist loadgroup "$@"
    first=0
  else
    echo "=== pytest on the $backend backend (backend-dependent tests, $workers workers)"
    KERAS_BACKEND=$backend python -m pytest -n "$workers" --dist loadgroup -m "not backend_neutral" "$@"
  fi
done
