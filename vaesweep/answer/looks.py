"""Looks: each answer shown at more seed blocks than before is one, recorded on the study so
that later answers spend only the error rate it left (`stats.sequential`).

Recording is a write a command asks for (`vaesweep run`, `report`, `compare`); reading a study
never records. A storage that refuses the write (read-only) keeps the answer valid now; a later
look then cannot know of this one, and is told so.
"""

from __future__ import annotations

from typing import Any

import optuna

from vaesweep.errors import shown
from vaesweep.store.storage import LOOKS_ATTR
from vaesweep.store.waiting import STORAGE_FAILURES

# The answer's procedure, stored with the looks, so that a later version that changes the
# procedure can tell which looks were spent under this one.
PROCEDURE = 2


def stored_looks(stored: Any) -> tuple[int, ...]:
    """The recorded looks (block counts), whatever a storage holds there."""
    blocks = stored.get("blocks") if isinstance(stored, dict) else None
    if not isinstance(blocks, list):
        return ()
    return tuple(sorted({b for b in blocks if isinstance(b, int) and not isinstance(b, bool)}))


def record_look(record: optuna.Study, looks: tuple[int, ...], blocks: int | None) -> str | None:
    """Record a look at `blocks` on the study; None when recorded (or nothing new to record),
    else why it was not."""
    if blocks is None or blocks in looks:
        return None
    try:
        record.set_user_attr(
            LOOKS_ATTR, {"blocks": sorted({*looks, blocks}), "procedure": PROCEDURE}
        )
    except STORAGE_FAILURES:
        return (
            f"study {shown(record.study_name)}: this look at {blocks} blocks was not recorded "
            "(the storage refused the write); an answer shown after more blocks will not "
            "account for it"
        )
    return None
