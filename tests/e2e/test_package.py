"""The package's shape, as pyproject's import-linter contracts state it: each stage imports only
earlier ones, reading a study never imports the run stage, the trainer never imports Optuna, the
spec stage is torch-free, and no stage's modules import one another in a cycle. `make lint` runs
the same check on the package. And every distribution the package imports is declared in
pyproject."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """The contracts checked against the package under `root` (found there first)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    command = [str(LINT_IMPORTS), "--no-cache", str(root / "pyproject.toml")]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)


def test_the_package_keeps_its_import_contracts():
    outcome = lint_imports(ROOT)
    assert outcome.returncode == 0, outcome.stdout
    assert "5 kept, 0 broken" in outcome.stdout


@pytest.mark.parametrize(
    ("module", "planted", "broken"),
    [
        ("spec/design.py", "from vaesweep.run import sweep", "only earlier stages"),
        ("training/losses.py", "from vaesweep.training import train", "no import cycle"),
        ("training/model.py", "import optuna", "never imports Optuna"),
        ("spec/config.py", "import torch", "torch-free"),
        ("commands/compare.py", "from vaesweep.run import progress", "never imports the run"),
        ("console.py", "from vaesweep.spec import config", "only earlier stages"),
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


def _imported_distributions(package: Path) -> dict[str, set[str]]:
    """Each third-party distribution the package's modules import, with the modules importing it."""
    from importlib.metadata import packages_distributions

    providers = packages_distributions()
    found: dict[str, set[str]] = {}
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for top in {name.split(".")[0] for name in names}:
                if top in sys.stdlib_module_names or top == "vaesweep" or top == "__future__":
                    continue
                for distribution in providers.get(top, [top]):
                    found.setdefault(canonical(distribution), set()).add(path.name)
    return found


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_distribution_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = {
        canonical(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0])
        for requirement in [*project["dependencies"], *extras["dashboard"]]
    }
    imported = _imported_distributions(ROOT / "vaesweep")
    assert {"torch", "numpy", "scipy", "sqlalchemy", "matplotlib"} <= imported.keys()
    undeclared = {name: sorted(files) for name, files in imported.items() if name not in declared}
    assert not undeclared, f"imported but not declared in pyproject: {undeclared}"


# Optuna beyond its public API: a private module, a private attribute of its objects, the
# system attributes it keeps for itself, a storage class subclassed or its engine read, or a
# storage method called (Optuna documents them as library-internal; studies are the public API).
OPTUNA_PRIVATE = re.compile(
    r"from optuna[\w.]*\._|import optuna[\w.]*\._|\.system_attrs\b"
    r"|\._(trial_id|storage|study_id|cached_frozen_trial)\b"
    r"|\(\s*optuna\.storages\.\w+Storage\s*\)|\bRDBStorage\b|(?<!sqlalchemy)\.engine\b"
    r"|\bstorage\.(get|set|create|delete|record|check|fail)_\w+\("
)


def optuna_private_uses(package: Path) -> list[str]:
    return [
        f"{path.relative_to(package)}:{number}"
        for path in sorted(package.rglob("*.py"))
        if path.name != "optuna_private.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if OPTUNA_PRIVATE.search(line)
    ]


def test_only_one_module_uses_optuna_beyond_its_public_api(tmp_path):
    assert optuna_private_uses(ROOT / "vaesweep") == []
    # Planted elsewhere, each kind is found.
    planted = tmp_path / "vaesweep" / "run"
    planted.mkdir(parents=True)
    (planted / "x.py").write_text(
        "from optuna.storages._heartbeat import get_heartbeat_thread\n"
        "params = trial.system_attrs['fixed_params']\n"
        "number = trial._trial_id\n"
        "class Mine(optuna.storages.RDBStorage): pass\n"
        "rows = self.engine.connect()\n"
        "storage.set_trial_state_values(trial_id, TrialState.FAIL)\n"
        "study.set_user_attr('answer', 1)\n"  # the public API: not found
    )
    found = optuna_private_uses(tmp_path / "vaesweep")
    assert found == [f"run/x.py:{line}" for line in range(1, 7)]


def long_functions(package: Path, most: int = 60) -> list[str]:
    """Functions longer than `most` lines, their docstrings aside (a public function documents
    its input and output tables there)."""
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
            if ast.get_docstring(node) is not None:
                doc = node.body[0]
                length -= doc.end_lineno - doc.lineno + 1  # type: ignore[operator]
            if length > most:
                found.append(f"{path.relative_to(package)}:{node.name} ({length} lines)")
    return found


def test_no_function_fits_more_than_a_screen(tmp_path):
    assert long_functions(ROOT / "vaesweep") == []
    planted = tmp_path / "x.py"
    body = "\n".join(f"    a{i} = {i}" for i in range(59))  # with its def line, 60
    planted.write_text(f'def f():\n    """Why."""\n{body}\n\n\ndef g():\n{body}\n    return 0\n')
    assert long_functions(tmp_path) == ["x.py:g (61 lines)"]
