"""The study's answer where Optuna's own tools look: a study user attribute (`optuna studies`,
`study.user_attrs`) and, when optuna-dashboard is installed, the study's note, which its study
page shows first. Optuna's "best trial" is one seed; these say what the replicates say."""

from __future__ import annotations

import importlib.util
import math

import pandas as pd

from vaesweep.answer import StudyAnswer
from vaesweep.answer.looks import PROCEDURE
from vaesweep.spec.metric_names import label
from vaesweep.store.storage import ANSWER_ATTR

ADVICE = (
    "Compare configurations with the answer (vaesweep report, or vaesweep.results), not with "
    "Optuna's best trial: that is one seed, and the importances read seed noise as effects."
)


def publish(data: StudyAnswer) -> None:
    """Store the answer on its study, where Optuna's tools show it (a run's last write)."""
    study = data.study.record
    noting = importlib.util.find_spec("optuna_dashboard") is not None
    stored = {
        "answers": [a.sentence for a in data.answers] or ["none yet"],
        "headlines": [a.headline for a in data.answers],  # each verdict alone
        "configurations": _configurations(data),
        "advice": ADVICE,
        "in_note": noting,
        "procedure": PROCEDURE,  # which answer's statistics
    }
    if study.user_attrs.get(ANSWER_ATTR) == stored:
        return  # already there: optuna-dashboard's import alone takes a second
    study.set_user_attr(ANSWER_ATTR, stored)
    if noting:  # an optional extra: vaesweep[dashboard]
        from optuna_dashboard import get_note, save_note

        body = note(data)
        if get_note(study) != body:  # each save is a new version of the note
            save_note(study, body)


def _rows(data: StudyAnswer) -> pd.DataFrame:
    """The effects table's rows of the first objective."""
    if not data.answers or data.effects.empty:
        return data.effects.iloc[:0]
    return data.effects[data.effects["metric"] == data.answers[0].objective]


def _configurations(data: StudyAnswer) -> list[dict[str, object]]:
    """The first objective's row of each compared configuration, as plain JSON."""
    rows = _rows(data)
    keep = ["n", "mean", "ci_low", "ci_high", "diff", "diff_low", "diff_high", "verdict"]
    named = len(data.study.params) == 1  # one parameter's configurations are its values alone
    return [
        {"configuration": f"{data.study.params[0]}={value}" if named else value}
        | {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for value, row in zip(rows["value"], rows[keep].to_dict("records"), strict=True)
    ]


def note(data: StudyAnswer) -> str:
    """The study note in Markdown: the answer, each configuration's mean and difference from
    the best with their intervals, and the advice."""
    lines = [f"# {data.study.name}: the answer", ""]
    lines += [f"**{a.sentence}**" for a in data.answers] or ["No trial has completed the protocol."]
    configurations = _configurations(data)
    if configurations:
        objective = label(data.answers[0].objective)
        lines += [
            "",
            f"| configuration | n | mean {objective} (95% CI, its own) "
            "| minus the best mean of the others (MCB 95% simultaneous) | verdict |",
            "| --- | --- | --- | --- | --- |",
        ]
        for row in configurations:
            interval = _interval(row["mean"], row["ci_low"], row["ci_high"])
            diff = _interval(row["diff"], row["diff_low"], row["diff_high"])
            verdict = row["verdict"] or "—"
            lines.append(
                f"| {row['configuration']} | {row['n']} | {interval} | {diff} | {verdict} |"
            )
    lines += ["", ADVICE]
    return "\n".join(lines) + "\n"


def _interval(value: object, low: object, high: object) -> str:
    if value is None or pd.isna(value):
        return "—"
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return f"{value:.4g}"
    return f"{value:.4g} ({low:.4g} to {high:.4g})"
