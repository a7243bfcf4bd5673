"""A study that grows until its answer is decided: real runs on tiny data, each added seed block
a look whose share of the error the answer spends."""

from __future__ import annotations

import re

import optuna

from vaesweep.store.storage import LOOKS_ATTR, default_storage_url

from conftest import write_dataset
from helpers import run_args, small_warmup, vaesweep


def growing_study(folder, margin: str) -> str:
    path = small_warmup(folder)
    text = open(path).read()
    text = text.replace("equivalence = 0.01", f"equivalence = {margin}")
    text = text.replace(
        "replicates = 2 ", "replicates = 2\nmax_replicates = 3\nuntil_decided = true\n# "
    )
    assert "until_decided = true" in text
    open(path, "w").write(text)
    return path


def stored(results, name="warmup") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=default_storage_url(results))


def test_a_decided_study_stops_at_its_design(tmp_path):
    data_dir = write_dataset(tmp_path / "fashion")
    study = growing_study(tmp_path, "1000")  # every difference is within ±1000 nats
    outcome = vaesweep(*run_args(tmp_path / "r", data_dir, 4, study=study))
    assert outcome.exit_code == 0, outcome.output
    assert "until decided: stopped after seed block 2 (every configuration decided)" in (
        outcome.output
    )
    record = stored(tmp_path / "r")
    assert len(record.get_trials(deepcopy=False)) == 4
    assert record.user_attrs[LOOKS_ATTR]["blocks"] == [2]


def test_an_undecided_study_adds_blocks_each_a_look(tmp_path):
    data_dir = write_dataset(tmp_path / "fashion")
    study = growing_study(tmp_path, "1e-9")  # nothing is equivalent within a billionth
    outcome = vaesweep(*run_args(tmp_path / "r", data_dir, 4, study=study))
    assert outcome.exit_code == 0, outcome.output
    found = re.search(r"until decided: stopped after seed block (\d) \(([^)]*)\)", outcome.output)
    assert found, outcome.output
    blocks, why = int(found.group(1)), found.group(2)
    assert blocks in (2, 3)
    assert why == "max_replicates reached" if blocks == 3 else why == "every configuration decided"
    record = stored(tmp_path / "r")
    assert len(record.get_trials(deepcopy=False)) == 2 * blocks
    assert record.user_attrs[LOOKS_ATTR]["blocks"] == list(range(2, blocks + 1))
    # The answer it ended with spent only what its looks left: the third look's share.
    if blocks == 3:
        assert "this look's share over looks up to 3 replicates; MCB intervals, 1 comparison" in (
            " ".join(outcome.output.split())  # the last lines wrap at spaces
        )
