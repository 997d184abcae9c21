#!/usr/bin/env bash
# Run the test suite once per Keras backend (Keras fixes its backend when first imported).
# Tests of backend-dependent code (layers, builders, fit loops, export, distribution,
# serving of models trained on each backend) run on every backend; tests marked
# backend_neutral (config, CLI parsing, data loading, search spaces, NumPy scores) run on
# the first backend only. Usage: bash tests/all-backends.sh [pytest arguments];
# KERAS_BACKENDS="jax" limits the set (its first backend then runs the neutral tests too).
set -euo pipefail
backends=${KERAS_BACKENDS:-"tensorflow jax torch"}
first=1
for backend in $backends; do
  if [ "$first" = 1 ]; then
    echo "=== pytest on the $backend backend (every test)"
    KERAS_BACKEND=$backend python -m pytest "$@"
    first=0
  else
    echo "=== pytest on the $backend backend (backend-dependent tests)"
    KERAS_BACKEND=$backend python -m pytest -m "not backend_neutral" "$@"
  fi
done
