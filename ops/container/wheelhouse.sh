#!/usr/bin/env bash
# Every wheel the image's build stage needs (the pinned dependencies and the build backend), fetched with
# this machine's pip configuration into ops/container/wheelhouse/, which the Dockerfile then installs from
# without an index: for CI, whose containers reach neither PyPI nor the mirror this machine's pip uses.
set -euo pipefail
cd "$(dirname "$0")/../.."
PIP=${PIP:-.venv/bin/pip}
OUT=ops/container/wheelhouse
backend=$(python3 -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))')
deps=$(python3 -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))')
# shellcheck disable=SC2086
"$PIP" download --quiet --only-binary=:all: --dest "$OUT" $backend $deps
echo "wheelhouse: $(ls "$OUT"/*.whl | wc -l) wheels in $OUT"
