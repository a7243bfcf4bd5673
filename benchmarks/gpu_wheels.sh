#!/usr/bin/env bash
# The wheels benchmarks/gpu_check.sh needs on a GPU machine that has PyTorch, NumPy, pandas,
# scikit-learn, seaborn, rich, click and Jinja2 but no package registry: the rest of vaesweep's
# dependencies, at the versions of this checkout's .venv, for that machine's Python 3.12, into
# .whl/ (ignored by git; the device call carries it: `carry: [".whl"]`).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NEEDED="optuna sqlalchemy alembic mako colorlog tenacity greenlet"
mkdir -p "$ROOT/.whl"
for name in $NEEDED; do
    pinned=$("$ROOT/.venv/bin/python" -m pip freeze 2>/dev/null | grep -i "^$name==" || echo "$name")
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$ROOT/.whl" "$pinned"
done
du -sh "$ROOT/.whl"
