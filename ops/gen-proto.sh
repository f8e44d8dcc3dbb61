#!/usr/bin/env bash
# Regenerate the Python code of the gRPC contract. The test suite fails when the committed code is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
"$python" -m grpc_tools.protoc -Iproto --python_out=proto --pyi_out=proto --grpc_python_out=proto \
    proto/exnode/v1/*.proto
