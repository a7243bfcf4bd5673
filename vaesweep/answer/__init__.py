"""The answer stage: a stored study's trials table -> the comparison of its configurations ->
an answer per objective, as one immutable `StudyAnswer`. Between `store/` (what is kept) and
`run/` / `report/` (which show it); recording a look is a separate, named write (`looks`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from vaesweep.answer import effects, looks, tuning
from vaesweep.answer.effects import Answer
from vaesweep.answer.stored import DEFAULT_RESULTS, StoredStudy, trials_table
from vaesweep.answer.stored import load as load_stored
from vaesweep.spec.metric_names import COMPARED_COLUMNS
from vaesweep.stats import Looks

__all__ = ["Answer", "StoredStudy", "StudyAnswer", "answer", "load", "record_look"]


@dataclass(frozen=True)
class StudyAnswer:
    """A study's answer, computed once from what is stored.

    study: the stored study it was computed from. table: one row per finished (or diverged)
    trial; `in_answer` marks those compared, `best` those of the configuration shown best.
    effects: per configuration and metric, see `effects.effects_table`. answers: one per
    objective compared. range_warnings: a tuned study's chosen values at the edge of their
    range."""

    study: StoredStudy
    table: pd.DataFrame
    effects: pd.DataFrame
    answers: tuple[Answer, ...]
    range_warnings: tuple[str, ...] = ()

    @property
    def best_mean(self) -> set[int]:
        """Trials of the configuration with the best mean first objective (compared ones),
        whether or not it is distinguishable from the others."""
        if not self.answers or self.table.empty:
            return set()
        rows = self.table[self.table["in_answer"]]
        labels = effects.configuration(rows, self.study.params)
        return set(rows.loc[labels == self.answers[0].best, "trial"])

    @property
    def best(self) -> set[int]:
        """The trials marked best (★): the first answer's configuration, only where the answer
        shows it better than every other; none otherwise."""
        return self.best_mean if self.answers and self.answers[0].shown_best else set()

    @property
    def decided(self) -> bool:
        """Every objective compared, and every configuration decided: the best, worse, or
        equivalent."""
        return bool(self.answers) and all(
            a.comparison is not None and not a.comparison.undecided for a in self.answers
        )

    @property
    def blocks(self) -> int | None:
        """The blocks (or replicates) this answer saw; None without a comparison."""
        seen = [a.comparison.replicates for a in self.answers if a.comparison is not None]
        return max(seen) if seen else None

    @property
    def trials_to_decide(self) -> int | None:
        """The `--trials` at which the answer expects every configuration decided, at the noise
        seen (None: decided, nothing to compare yet, or not within `max_blocks`)."""
        more = [
            a.comparison.more_replicates
            for a in self.answers
            if a.comparison is not None and a.comparison.more_replicates is not None
        ]
        if not more or self.blocks is None:
            return None
        blocks = self.blocks + max(more)
        return self.study.trials_at(blocks) if blocks <= self.study.design.most_blocks else None

    @property
    def trials_to_answer(self) -> int:
        """The `--trials` that completes the design: where a study without an answer gets one."""
        return self.study.trials_at(max(self.study.design.replicates, 2))

    def history(self, number: int) -> pd.DataFrame:
        """Trial `number`'s per-epoch history, as its folder's history.csv stores it."""
        return self.study.history(number)

    def __repr__(self) -> str:
        sentence = self.answers[0].sentence if self.answers else "no answer yet"
        head = sentence if len(sentence) <= 100 else sentence[:99] + "…"
        return f"<StudyAnswer {self.study.name!r}: {len(self.table)} trials; {head}>"

    def _repr_html_(self) -> str:
        """In a notebook: each answer, then the first objective's effects table."""
        from html import escape

        sentences = [a.sentence for a in self.answers] or ["no answer yet"]
        parts = [f"<p><b>{escape(self.study.name)}</b>: {escape(s)}</p>" for s in sentences]
        if self.answers and not self.effects.empty:
            rows = self.effects[self.effects["metric"] == self.answers[0].objective]
            parts.append(rows.to_html(index=False, float_format="{:.4g}".format))
        return "\n".join(parts)


def answer(study: StoredStudy) -> StudyAnswer:
    """The effects table and an answer per objective, from the trials in the answer; the looks
    recorded before this one spend their share of the error rate."""
    table = trials_table(study)
    fair = table[table["in_answer"]] if not table.empty else table
    directions = dict(zip(study.objectives, study.directions, strict=True))
    margins = study.equivalence or {}
    metrics = [m for m in dict.fromkeys([*study.objectives, *COMPARED_COLUMNS]) if m in fair]
    blocked = study.design.shares_seeds
    seen = Looks(study.looks, study.design.most_blocks)
    answered = [o for o in study.objectives if o in fair]
    compared = effects.objective_comparisons(
        fair, study.params, answered, directions, blocked, margins, seen
    )
    found = (
        effects.objective_answer(
            fair,
            study.params,
            objective,
            directions[objective],
            blocked,
            margins.get(objective),
            len(answered),
            seen,
            compared,
            [p.name for p in study.tuned],
        )
        for objective in answered
    )
    result = StudyAnswer(
        study=study,
        table=table,
        effects=effects.effects_table(fair, study.params, metrics, blocked, directions, compared),
        answers=tuple(a for a in found if a is not None),  # None: nothing comparable
        range_warnings=tuple(tuning.edge_warnings(study, table)),
    )
    if not table.empty:
        table["best"] = table["trial"].isin(result.best)
    return result


def load(
    study: str,
    storage: str | None = None,
    results: str | Path = DEFAULT_RESULTS,
    note: Callable[[str], None] = lambda _: None,
    artifacts: str | None = None,
) -> StudyAnswer:
    """A stored study's answer, by name: `.table` (one row per finished trial: trial, state,
    best, in_answer, phase, replicate, the searched parameters, duration_s, epochs_run, every
    val_ and test_ metric, note), `.answers` (one per objective), `.effects`, `.history(trial)`,
    and `.study` (what is stored). Reading only: no look is recorded (`record_look`). `note`
    hears what cannot be read (a damaged trial folder, say). With `artifacts` (the folder or
    s3://BUCKET/PREFIX a run stored its trials in), trial folders missing under `results` are
    fetched into it."""
    return answer(load_stored(study, storage, results, note, artifacts))


def record_look(result: StudyAnswer) -> str | None:
    """Record that this answer was looked at (a write), as a command that shows an answer does;
    None when recorded (or already), else why not (a read-only storage, say)."""
    if not result.study.made_by_vaesweep:
        return None
    return looks.record_look(result.study.record, result.study.looks, result.blocks)
