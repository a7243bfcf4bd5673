"""`vaesweep studies`: what you can run (the study files) and what you have run (the stored
studies, each with its finished trials and the answer last shown)."""

from __future__ import annotations

import re
from pathlib import Path

import click

from vaesweep.commands.common import quiet_optuna, results_option, storage_option
from vaesweep.errors import counted, visible


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
        detects = spec.detects()
        console.print(f"{name}: {spec.description}", style="bold")
        for line in (
            "searches "
            + "; ".join(f"{p.name}: {p.describe()}" for p in spec.search)
            + "".join(f"; {tunes}" for tunes in _tuned(spec)),
            f"objective {', '.join(spec.objectives)}; design {spec.design_summary()}",
            "detects "
            + "; ".join(
                f"{o} {detects[o]:.2g} (σ {spec.noise[o]:.2g})" if o in detects else f"{o} —"
                for o in spec.objectives
            ),
        ):
            console.print(f"  {line}")
    console.print(
        f"study files: {STUDIES_DIR} (in a clone, also studies/); run your own with "
        "--study FILE.toml. detects: how much better than every other one a configuration must "
        "be for the design's answer to name it the best with 80% power at the design's look, at "
        "the residual SD σ measured here (the study file's noise); — where unmeasured or "
        "nothing is compared."
    )
    _stored_studies(console, storage, results)


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
    """Each stored study in a line: its finished trials and the head of the answer last shown
    (its verdict and numbers; read from the storage, so listing is no new look)."""
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
        stored = open_storage(url)
        names = optuna.get_all_study_names(stored)
        console.print(f"stored in {visible(redact(url))}:" if names else "stored: none yet")
        for name in names:
            study = optuna.load_study(study_name=name, storage=stored)
            finished = len(study.get_trials(deepcopy=False, states=FINISHED_STATES))
            shown = study.user_attrs.get(ANSWER_ATTR, {})
            answers = shown.get("answers") if isinstance(shown, dict) else None
            answer = str(answers[0]) if isinstance(answers, list) and answers else "no answer yet"
            head = re.split(r" \(|; ", answer, maxsplit=1)[0]  # its verdict and numbers
            trials = counted(finished, "finished trial")
            console.print(f"  {visible(name)}: {trials}; {visible(head)}")
