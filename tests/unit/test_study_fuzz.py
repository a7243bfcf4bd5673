"""Fuzzed study files: every one is either a study whose every derived value can be computed, or
one clear line (a VaesweepError, short and single-line). Never another exception."""

from __future__ import annotations

import copy
import random
import tomllib

from vaesweep.errors import VaesweepError
from vaesweep.spec.studies import STUDIES_DIR, parse_study

VALUES = [
    0,
    -1,
    1,
    2,
    10**10,
    10**300,
    1e300,
    1e-300,
    float("nan"),
    float("inf"),
    -float("inf"),
    "x",
    "",
    True,
    False,
    [],
    [1],
    [1, 10**9],
    {},
    {"a": 1},
    0.5,
    1.5,
    "mse",
    "bce",
    "seed",
    "conv",
    "mlp",
    [0.0, 1.0],
    3.7,
    "tpe",
    "random",
    "nsga2",
    "median",
    "hyperband",
    "none",
]
KEYS = [
    "type",
    "low",
    "high",
    "step",
    "log",
    "choices",
    "replicates",
    "explore",
    "confirm_top",
    "blocked",
    "equivalence",
    "noise",
    "name",
    "n_startup_trials",
    "reduction_factor",
    "min_resource",
    "population_size",
    "objectives",
    "description",
]
SETTINGS = [
    "latent_dim",
    "lr",
    "epochs",
    "warmup_epochs",
    "batch_size",
    "train_subset",
    "val_size",
    "min_lr",
    "lr_factor",
    "early_stop_start",
    "ssim_images",
    "iwae_samples",
    "likelihood",
    "arch",
    "binarize",
    "monitor",
    "precision",
    "lr_patience",
    "seed",
]
PARAMS = [
    {"type": "int", "low": 0, "high": 4},
    {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    {"type": "categorical", "choices": [2, 8]},
]


def mutate(study: dict, rng: random.Random) -> dict:
    study = copy.deepcopy(study)
    for _ in range(rng.randint(1, 3)):
        where = rng.choice(["top", "fixed", "sampler", "pruner", "search"])
        if where == "top":
            study[rng.choice(KEYS)] = rng.choice(VALUES)
        elif where == "fixed":
            study.setdefault("fixed", {})[rng.choice(SETTINGS)] = rng.choice(VALUES)
        elif where in ("sampler", "pruner"):
            table = study.get(where) if isinstance(study.get(where), dict) else {}
            table[rng.choice(KEYS)] = rng.choice(VALUES)
            study[where] = table
        else:
            search = study.get("search") if isinstance(study.get("search"), dict) else {}
            param = dict(rng.choice(PARAMS))
            param[rng.choice(KEYS)] = rng.choice(VALUES)
            search[rng.choice(SETTINGS)] = param
            study["search"] = search
    return study


def test_fuzzed_study_files_load_whole_or_fail_in_one_line():
    rng = random.Random(16)
    shipped = [tomllib.loads(p.read_text()) for p in sorted(STUDIES_DIR.glob("*.toml"))]
    loaded = refused = 0
    for _ in range(3000):
        raw = mutate(rng.choice(shipped), rng)
        try:
            spec = parse_study(raw, "fuzz", "fuzz.toml")
        except VaesweepError as err:
            assert "\n" not in str(err) and len(str(err)) < 600, str(err)
            refused += 1
            continue
        spec.definition(), spec.design_summary(), spec.detects(), spec.beta_warning()
        spec.make_sampler(0), spec.make_pruner()
        for corner in spec.corners()[:20]:
            spec.config_for(corner, seed=1)
        loaded += 1
    assert loaded >= 10 and refused > 1000  # both kinds were exercised


def test_a_study_file_nested_too_deeply_is_one_line_naming_the_file(tmp_path):
    """Arrays nested 500 deep overflow the TOML reader's recursion; 250 deep, the check's."""
    from vaesweep.spec.studies import load_study

    for depth in (250, 500, 5000):
        path = tmp_path / f"deep{depth}.toml"
        nested = "[" * depth + "]" * depth
        path.write_text(f'description = "x"\nobjectives = ["val_loss"]\nreplicates = {nested}\n')
        try:
            load_study(str(path))
        except VaesweepError as err:
            assert str(err).startswith(f"{path}: ") and "\n" not in str(err), err
        else:
            raise AssertionError("a study file nested that deep loaded")
