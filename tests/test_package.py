"""The package's shape, as pyproject's import-linter contracts state it: each stage imports only
earlier ones, the trainer never imports Optuna, the spec stage is torch-free, and no stage's
modules import one another in a cycle. `make lint` runs the same check on the package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """The contracts checked against the package under `root` (found there first)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [str(LINT_IMPORTS), "--no-cache", str(root / "pyproject.toml")]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)


def test_the_package_keeps_its_import_contracts():
    outcome = lint_imports(ROOT)
    assert outcome.returncode == 0, outcome.stdout
    assert "4 kept, 0 broken" in outcome.stdout


@pytest.mark.parametrize(
    ("module", "planted", "broken"),
    [
        ("spec/design.py", "from vaesweep.run import sweep", "only earlier stages"),
        ("training/losses.py", "from vaesweep.training import train", "no import cycle"),
        ("training/model.py", "import optuna", "never imports Optuna"),
        ("spec/config.py", "import torch", "torch-free"),
    ],
)
def test_a_planted_violation_breaks_its_contract(tmp_path, module, planted, broken):
    shutil.copytree(ROOT / "vaesweep", tmp_path / "vaesweep")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with (tmp_path / "vaesweep" / module).open("a") as file:
        file.write(f"\n{planted}  # planted\n")
    outcome = lint_imports(tmp_path)
    assert outcome.returncode != 0
    assert broken in outcome.stdout.split("Broken contracts")[1], outcome.stdout
