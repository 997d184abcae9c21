#!/usr/bin/env bash
# Run the test suite once per Keras backend (Keras fixes its backend when first imported).
# Usage: bash tests/all-backends.sh [pytest arguments]; KERAS_BACKENDS="jax" limits the set.
set -euo pipefail
backends=${KERAS_BACKENDS:-"tensorflow jax torch"}
for backend in $backends; do
  echo "=== pytest on the $backend backend"
  KERAS_BACKEND=$backend python -m pytest "$@"
done
