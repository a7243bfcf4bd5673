"""What a report's page holds of one study: its answer (immutable, from `vaesweep.answer`) and
what drawing it found: figures, trials whose folders could not be drawn, notes."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from vaesweep.answer import StoredStudy, StudyAnswer


@dataclass
class Section:
    """answered: the study's answer. look: why this look was not recorded (None: it was).
    figures: the study's figures, name -> path relative to the report. trial_figures: trial
    number -> its figures. problems: trial number -> why its figures are missing. notes: what
    the page says of figures it could not draw. trials_drawn: trials whose own figures were
    drawn (None: all)."""

    answered: StudyAnswer
    look: str | None = None
    figures: dict[str, str] = field(default_factory=dict)
    trial_figures: dict[int, dict[str, str]] = field(default_factory=dict)
    problems: dict[int, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    trials_drawn: int | None = None

    @property
    def study(self) -> StoredStudy:
        return self.answered.study

    def problem(self, number: int) -> str | None:
        """Why trial `number`'s figures are missing: its folder, or its drawing."""
        return self.problems.get(number) or self.study.entry(number).problem

    @property
    def table(self) -> pd.DataFrame:
        """The answer's trials table, with the problems found while drawing in its note."""
        table = self.answered.table.copy()
        for number, problem in self.problems.items():
            table.loc[table["trial"] == number, "note"] = problem
        return table
