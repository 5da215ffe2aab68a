#!/usr/bin/env bash
# Generates Python, gRPC and typing stubs from protos/ into the directory given
# (default gen/). One home, one command: `make protos`; `make protos-check`
# regenerates into a temporary directory and compares.
set -euo pipefail
out=${1:-gen}
py=${PYTHON:-.venv/bin/python}
site=$("$py" -c 'import google.rpc.status_pb2 as m, os; print(os.path.dirname(os.path.dirname(os.path.dirname(m.__file__))))')
bindir=$(dirname "$py")
rm -rf "$out" && mkdir -p "$out"
mapfile -t files < <(cd protos && find sendmesh -name '*.proto' | sort)
PATH="$bindir:$PATH" "$py" -m grpc_tools.protoc -I protos -I "$site" \
  --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out="$out" "${files[@]}"
# Regular packages, so setuptools and mypy find them without namespace magic.
find "$out/sendmesh" -type d -exec touch {}/__init__.py \;
