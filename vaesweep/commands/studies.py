"""`vaesweep studies`: what you can run (the study files) and what you have run (the stored
studies, each with its finished trials and the answer last shown)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from vaesweep.commands.common import quiet_optuna, results_option, storage_option
from vaesweep.errors import counted, visible

if TYPE_CHECKING:
    from rich.table import Table


@click.command()
@storage_option
@results_option("Folder whose stored studies to list too.")
def studies(storage, results) -> None:
    """What you can run (the study files) and what you have run (the stored studies)."""
    from vaesweep.console import make_console
    from vaesweep.spec.studies import STUDIES_DIR, available_studies, load_study
    from vaesweep.store.layout import check_readable

    check_readable(results)  # before anything is printed
    console = make_console()  # each study a few lines, wrapped at spaces at any width
    for name in available_studies():
        spec = load_study(name)
        console.print(f"{name}: {spec.description}", style="bold")
        console.print(_details(spec))  # wrapped lines keep their column, at any width
    console.print(
        f"study files: {STUDIES_DIR} (in a clone, also studies/); run your own with "
        "--study FILE.toml. detects: how much better than every other one a configuration must "
        "be for the design's answer to name it the best with 80% power at the design's look, at "
        "the residual SD σ measured here (the study file's noise); — where unmeasured or "
        "nothing is compared."
    )
    _stored_studies(console, storage, results)


def _details(spec) -> Table:
    """A study file's search, objectives, design, `--trials` and what it detects, a row each."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column()
    searches = "; ".join(f"{p.name}: {p.describe()}" for p in spec.search)
    trials = f"{spec.trials_at()} complete the design"
    if spec.design.until_decided:
        trials += f"; it may grow to {spec.trials_at(spec.design.most_blocks)}"
    for key, value in (
        ("searches", "; ".join([searches, *_tuned(spec)])),
        ("objective", ", ".join(spec.objectives)),
        ("design", spec.design_summary(trials=False)),
        ("--trials", trials),
        ("detects", _detects(spec)),
    ):
        grid.add_row(f"  {key}", value)
    return grid


def _detects(spec) -> str:
    """Per objective, what the design's look detects; for a study grown until decided, also
    what its last look, at max_blocks, would."""
    first, design = spec.detects(), spec.design
    last = spec.detects(design.most_blocks) if design.until_decided else {}
    said = []
    for o in spec.objectives:
        if o not in first:
            said.append(f"{o} —")
        elif o in last:
            at = f"at {design.replicates} blocks, {last[o]:.2g} at {design.most_blocks}"
            said.append(f"{o} {first[o]:.2g} {at} (σ {spec.noise[o]:.2g})")
        else:
            said.append(f"{o} {first[o]:.2g} (σ {spec.noise[o]:.2g})")
    return "; ".join(said)


def _tuned(spec) -> list[str]:
    """Each nuisance parameter and the values every configuration is tuned over."""
    return [
        f"tunes {p.name} for each over "
        + ", ".join(
            f"{v:g}" if isinstance(v, float) else str(v) for v in p.points(spec.design.tune)
        )
        for p in spec.nuisance
    ]


def _stored_studies(console, storage: str | None, results: Path) -> None:
    """Each stored study in a line: its finished trials and the verdict of the answer last shown
    (read from the storage, so listing is no new look)."""
    import optuna

    from vaesweep.answer.stored import storage_url
    from vaesweep.store.layout import DEFAULT_DB_NAME
    from vaesweep.store.storage import (
        ANSWER_ATTR,
        FINISHED_STATES,
        open_storage,
        redact,
        storage_errors,
    )

    if storage is None and not (results / DEFAULT_DB_NAME).is_file():
        console.print(f"stored: none yet in {visible(results)}")
        return
    quiet_optuna()
    url = storage_url(results, storage)
    with storage_errors(url, reading=True):
        stored = open_storage(url, reading=True)
        names = optuna.get_all_study_names(stored)
        console.print(f"stored in {visible(redact(url))}:" if names else "stored: none yet")
        for name in names:
            study = optuna.load_study(study_name=name, storage=stored)
            finished = len(study.get_trials(deepcopy=False, states=FINISHED_STATES))
            shown = study.user_attrs.get(ANSWER_ATTR, {})
            heads = shown.get("headlines") if isinstance(shown, dict) else None
            head = str(heads[0]) if isinstance(heads, list) and heads else "no answer yet"
            trials = counted(finished, "finished trial")
            console.print(f"  {visible(name)}: {trials}; {visible(head)}")
