"""The README and docs as a newcomer uses them: every link resolves inside the repository, and
every `vaesweep run` recipe is a valid run whose trials reach β = 1."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from vaesweep.spec.studies import load_study, parse_overrides

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "BENCHMARKS.md", *ROOT.glob("docs/*.md")]


def test_every_link_is_a_file_of_the_repository():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#]+)", page.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            path = (page.parent / target).resolve()
            assert path.is_relative_to(ROOT) and path.exists(), f"{page.name}: {target}"


def run_recipes() -> list[list[str]]:
    """Every `vaesweep run ...` command in the README's shell blocks (continued lines joined)."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line.split("#")[0])
            if words[:2] == ["vaesweep", "run"]:
                commands.append(words[2:])
    return commands


def test_the_readme_s_run_recipes_are_valid_and_reach_beta_1():
    recipes = run_recipes()
    assert len(recipes) >= 4
    for args in recipes:
        study = args[args.index("--study") + 1]
        if study.endswith(".toml"):
            continue  # the reader's own file
        sets = tuple(args[i + 1] for i, word in enumerate(args) if word == "--set")
        spec = load_study(study).with_overrides(parse_overrides(sets))
        assert spec.beta_warning() is None, args
