#!/usr/bin/env bash
# Creates the venv with the MLflow tracking server that tests/publish_mlflow.rs
# starts on loopback, at ~/.cache/decant/mlflow-venv, and prints the path of its
# `mlflow` command. Idempotent; a separate venv because MLflow pins its own
# numpy, pandas and SQLAlchemy.
set -euo pipefail
cache="${DECANT_CACHE:-$HOME/.cache/decant}"
venv="$cache/mlflow-venv"
mlflow_version=3.17.2
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
if [[ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("mlflow"))' 2>/dev/null)" != "$mlflow_version" ]]; then
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet "mlflow==$mlflow_version" >&2
fi
echo "$venv/bin/mlflow"
