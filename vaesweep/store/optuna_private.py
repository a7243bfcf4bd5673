"""Every use of Optuna beyond its public API, each with why, so that a release that changes
one of them breaks this module alone (tests/test_binding.py and test_liveness.py exercise each).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy
from optuna.storages._heartbeat import get_heartbeat_thread
from optuna.trial import FrozenTrial

__all__ = ["RUNNING_BEATS", "heartbeat_thread", "queued_params"]

# The thread `study.optimize` starts to beat for a trial. A run that asks and tells has no
# public way to keep its trials' heartbeats, and without one a killed worker's trial stays
# RUNNING for ever.
heartbeat_thread = get_heartbeat_thread

# Each running trial's last stored heartbeat, read from Optuna's RDB tables: the public API
# offers only `fail_stale_trials`, which compares the beat with this machine's wall clock, so a
# clock set wrong on one machine would fail another's live trial (store/heartbeats.py).
RUNNING_BEATS = sqlalchemy.text(
    "SELECT t.number, h.heartbeat FROM trials t "
    "LEFT JOIN trial_heartbeats h ON h.trial_id = t.trial_id "
    "WHERE t.study_id = :study AND t.state = 'RUNNING'"
)


def queued_params(trial: FrozenTrial) -> dict[str, Any]:
    """The parameters of a trial: asked, its own; queued by `enqueue_trial` and not yet asked,
    the ones it was queued with, which Optuna keeps only as the system attribute
    "fixed_params" (a design must see the places it queued as taken)."""
    return trial.params or dict(trial.system_attrs.get("fixed_params", {}))
