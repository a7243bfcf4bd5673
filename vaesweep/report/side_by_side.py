"""Studies side by side (`vaesweep compare`, and the report's section): studies that share an
objective, each one's answer, the fixed settings that differ, and, where their evaluations are
the same, whether their best configurations differ, with the answers' own statistics."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from vaesweep.answer import StudyAnswer, effects
from vaesweep.errors import VaesweepError, shown
from vaesweep.spec.config import DEFAULTS
from vaesweep.spec.metric_names import LIKELIHOOD_SCALED, label
from vaesweep.stats.between import Best, BestPair, compare_bests
from vaesweep.store.storage import SEED_ATTR

# Settings that decide what a metric is measured on: studies that differ in one do not measure
# the same quantity, so their numbers are shown but never tested against each other.
EVALUATION_SETTINGS = (
    "val_size",
    "eval_images",
    "ssim_images",
    "nll_val_images",
    "nll_test_images",
    "iwae_samples",
    "binarize",
)


@dataclass
class Row:
    study: str
    best: str  # its configuration with the best mean, or "" without an answer
    shown: str  # the same as the answer names it, and whether it was shown best, or "no answer yet"
    n: int
    mean: float
    half_width: float
    sentence: str  # its answer, or why there is none


@dataclass
class SideBySide:
    objective: str
    rows: list[Row]
    differing: dict[str, list[Any]]  # setting -> each study's value, or "searched", "tuned ..."
    verdict: str  # whether the best configurations differ, or why that is not tested


def groups(studies: list[StudyAnswer]) -> list[SideBySide]:
    """The report's section: studies with an answer grouped by their first objective, each group
    of two or more side by side."""
    by_objective: dict[str, list[StudyAnswer]] = {}
    for study in studies:
        if study.answers:
            by_objective.setdefault(study.study.objectives[0], []).append(study)
    return [side_by_side(group, o) for o, group in by_objective.items() if len(group) > 1]


def shared_objectives(studies: list[StudyAnswer]) -> list[str]:
    """The objectives every study has, in the first study's order."""
    return [
        o for o in studies[0].study.objectives if all(o in s.study.objectives for s in studies[1:])
    ]


def side_by_side(studies: list[StudyAnswer], objective: str | None = None) -> SideBySide:
    if len(studies) < 2:
        raise VaesweepError("compare needs at least two studies")
    names = [s.study.name for s in studies]
    if len(set(names)) < len(names):
        raise VaesweepError(f"compare names a study twice ({', '.join(map(shown, names))})")
    shared = shared_objectives(studies)
    if objective is None and not shared:
        listed = "; ".join(
            f"{shown(s.study.name)}: {', '.join(s.study.objectives)}" for s in studies
        )
        raise VaesweepError(f"these studies share no objective ({listed})")
    if objective is not None and objective not in shared:
        raise VaesweepError(
            f"objective {shown(objective)} is not one of every study's objectives "
            f"(shared: {', '.join(shared) or 'none'})"
        )
    objective = objective or shared[0]
    directions = {s.study.directions[s.study.objectives.index(objective)] for s in studies}
    rows = [_row(s, objective) for s in studies]
    differing = _differing(studies)
    verdict = _verdict(studies, objective, rows, differing, directions)
    return SideBySide(objective, rows, differing, verdict)


def _answer(study: StudyAnswer, objective: str) -> effects.Answer | None:
    return next((a for a in study.answers if a.objective == objective), None)


def _row(study: StudyAnswer, objective: str) -> Row:
    found = _answer(study, objective)
    if found is None:
        return Row(
            study.study.name, "", "no answer yet", 0, float("nan"), float("nan"), "no answer yet"
        )
    shown = f"{study.study.params[0]}={found.best}" if len(study.study.params) == 1 else found.best
    # "Best" only where the answer shows it better than every other; else its mean ranks first.
    shown += " (the best)" if found.shown_best else " (best mean; not shown best)"
    return Row(
        study.study.name, found.best, shown, found.n, found.mean, found.half_width, found.sentence
    )


def _settings(study: StudyAnswer) -> dict[str, Any]:
    role = {p["name"]: "searched" for p in study.study.search}
    role |= {p["name"]: "tuned per configuration" for p in study.study.nuisance}
    values = DEFAULTS | study.study.fixed
    return {k: role.get(k, v) for k, v in values.items() if k != "seed"}


def _differing(studies: list[StudyAnswer]) -> dict[str, list[Any]]:
    settings = [_settings(s) for s in studies]
    keys = sorted({k for s in settings for k in s})
    return {
        k: [s.get(k) for s in settings]
        for k in keys
        if any(s.get(k) != settings[0].get(k) for s in settings)
    }


def _best(study: StudyAnswer, objective: str, best: str) -> Best:
    """The best configuration's completed values by seed, and how many it was chosen from."""
    rows = study.table[study.table["in_answer"] & (study.table["state"] == "COMPLETE")]
    rows = rows.dropna(subset=[objective])
    configs = effects.configuration(rows, study.study.params)
    chosen = rows[configs == best]
    # Paired by seed; a trial without a recorded seed is keyed by its study, so never paired.
    seeds = {e.trial.number: e.trial.user_attrs.get(SEED_ATTR) for e in study.study.entries}
    keys = [
        seeds.get(t) if seeds.get(t) is not None else (study.study.name, t) for t in chosen["trial"]
    ]
    values = dict(zip(keys, chosen[objective].astype(float), strict=True))
    return Best(study.study.name, values, max(configs.nunique(), 1))


def _verdict(
    studies: list[StudyAnswer],
    objective: str,
    rows: list[Row],
    differing: dict[str, list[Any]],
    directions: set[str],
) -> str:
    """Whether the studies' best configurations differ (stats.between), where allowed."""
    measured = [*EVALUATION_SETTINGS, *(["likelihood"] if objective in LIKELIHOOD_SCALED else [])]
    unlike = [k for k in measured if k in differing]
    if unlike:
        what = ", ".join(f"{k}: {' vs '.join(map(str, differing[k]))}" for k in unlike)
        return (
            f"not tested: the studies measure {label(objective)} differently ({what}), so "
            "their numbers are not like for like"
        )
    if len(directions) > 1:
        return f"not tested: the studies do not agree which way {objective} is better"
    if any(not r.best for r in rows):
        waiting = ", ".join(shown(r.study) for r in rows if not r.best)
        return f"not tested: no answer yet for {waiting}"
    bests = [_best(s, objective, r.best) for s, r in zip(studies, rows, strict=True)]
    found, family = compare_bests(bests)
    parts = [_pair_sentence(p) for p in found]
    how = (
        f"95% simultaneous intervals, Bonferroni over the {family} pairs of configurations the "
        "studies could have chosen as their bests; Welch t, or paired on shared seeds"
    )
    return "each study's best-mean configuration compared: " + "; ".join(parts) + f" ({how})."


def _pair_sentence(pair: BestPair) -> str:
    names = f"{shown(pair.first)} − {shown(pair.second)}"
    if math.isnan(pair.diff):
        return f"{names}: fewer than 2 replicates, not tested"
    how = f", paired on {pair.paired} shared seeds" if pair.paired else ""
    interval = f"{pair.diff:.3g} ({pair.low:.3g} to {pair.high:.3g}{how})"
    verdict = "they differ" if pair.separated else "no difference shown"
    return f"{names} = {interval}: {verdict}"
