#!/bin/sh
# Regenerates the images' lock files (exact versions and sha256 hashes) from pyproject.toml
# and docker/requirements-*.{in,txt}, pinned to the versions the test suite ran with
# (`pip freeze` of .venv). torch is left out: the images install it first, from the CPU or
# CUDA index their build argument names (or a local wheel folder).
#   docker/lock.sh            # needs `uv` (pip install uv) and `make install`
set -eu
cd "$(dirname "$0")/.."
frozen=$(mktemp)
trap 'rm -f "$frozen"' EXIT
.venv/bin/pip freeze --exclude-editable | grep -v '^-e ' | grep -v '^modelops' > "$frozen"
common="--generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
  --index-url https://pypi.org/simple --find-links ${TORCH_FIND_LINKS:-/opt/wheels} \
  --no-emit-package torch -c $frozen --custom-compile-command docker/lock.sh --quiet"
# shellcheck disable=SC2086
uv pip compile pyproject.toml docker/requirements-deploy.txt --extra serve --extra postgres \
  --extra s3 $common -o docker/requirements.lock
# shellcheck disable=SC2086
uv pip compile docker/requirements-dagster.in $common -o docker/requirements-dagster.lock
# The "via" notes name the temporary constraints file: name what it holds instead.
sed -i "s|-c $frozen|-c pip freeze of .venv|" docker/requirements.lock docker/requirements-dagster.lock
