"""docs/slurm/vaesweep.sbatch, run as written by bash on three "nodes" at once (Slurm reads its
#SBATCH lines; bash skips them as comments): one study, exactly the trials asked for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna
import torch

import vaesweep as vaesweep_api
from vaesweep import results
from vaesweep.store.storage import open_storage

from helpers import TINY_SETTINGS

RECIPE = Path(__file__).resolve().parents[2] / "docs" / "slurm" / "vaesweep.sbatch"
NODES, TRIALS = 3, 6


def test_the_recipe_ends_in_one_study_with_exact_counts(tmp_path, tiny_data_dir):
    shared = tmp_path / "shared"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),  # the recipe's default shared folder is under it
        "VAESWEEP_SHARED": str(shared),
        "VAESWEEP_TRIALS": str(TRIALS),
        "VAESWEEP_ARGS": " ".join(["--data-dir", str(tiny_data_dir), *TINY_SETTINGS]),
    }
    nodes = [
        subprocess.Popen(
            ["bash", str(RECIPE)],
            env={**env, "SLURM_ARRAY_TASK_ID": str(task)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for task in range(NODES)
    ]
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0] * NODES, outputs
    assert all(f"journal:///{shared}/warmup.log" in out.splitlines()[0] for out in outputs)

    storage = open_storage(f"journal:///{shared / 'warmup.log'}", reading=True)
    trials = optuna.load_study(study_name="warmup", storage=storage).get_trials(deepcopy=False)
    finished = [t for t in trials if t.state.name == "COMPLETE"]
    places = {(t.user_attrs["replicate"], t.params["warmup_epochs"]) for t in finished}
    assert len(finished) == len(places) == TRIALS
    assert all(
        t.user_attrs.get("fail_reason", "").startswith("surplus")
        for t in trials
        if t not in finished
    )
    folders = sorted((shared / "results" / "warmup").glob("trial-*"))
    assert len(folders) == TRIALS and all((f / "model.pt").is_file() for f in folders)

    # Read on a machine that sees neither the nodes' disks nor their results folder: the
    # storage and the artifact store alone give every trial's folder, fetched into a new one.
    url, store, elsewhere = f"journal:///{shared}/warmup.log", str(shared / "artifacts"), tmp_path
    data = results.load("warmup", url, elsewhere / "results", artifacts=store)
    assert len(data.study.entries) == TRIALS
    assert all(
        e.problem is None and e.folder.parent.parent == elsewhere / "results"
        for e in data.study.entries
    )
    number = finished[0].number
    model, config = vaesweep_api.load_model(
        study="warmup", trial=number, storage=url, results=elsewhere / "results", artifacts=store
    )
    original = torch.load(shared / "results" / "warmup" / f"trial-{number:04d}" / "model.pt")
    assert all(torch.equal(original[k], v) for k, v in model.state_dict().items())
