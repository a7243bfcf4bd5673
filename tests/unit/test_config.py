import dataclasses
from pathlib import Path

import pytest

from vaesweep.errors import VaesweepError
from vaesweep.spec.config import RULES, Rule, TrainConfig, parse_override, rules, setting


def test_defaults_are_the_reference_notebooks_run():
    config = TrainConfig()
    assert (config.arch, config.latent_dim, config.likelihood) == ("conv", 2, "mse")
    assert (config.lr, config.batch_size, config.epochs, config.warmup_epochs) == (
        1e-4,
        128,
        60,
        40,
    )
    assert (config.lr_factor, config.lr_patience, config.min_lr) == (0.5, 5, 5e-5)
    assert (config.early_stop_patience, config.early_stop_start_epoch) == (10, 20)


def test_an_unknown_architecture_is_named_with_the_choices():
    with pytest.raises(VaesweepError, match="'arch' must be one of conv, mlp; got 'seed'"):
        TrainConfig(arch="seed")  # the notebook's network's name before 0.1.0


def test_unknown_key_is_named():
    with pytest.raises(VaesweepError, match="unknown setting 'epoch'"):
        TrainConfig.from_mapping({"epoch": 3}, "mystudy")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("epochs", 0, "'epochs' must be a positive integer"),
        ("epochs", 2.5, "'epochs' must be a positive integer"),
        ("latent_dim", True, "'latent_dim' must be a positive integer"),
        ("warmup_epochs", -1, "'warmup_epochs' must be a non-negative integer"),
        ("lr", 0, "'lr' must be a positive number"),
        ("lr", "fast", "'lr' must be a positive number"),
        ("likelihood", "poisson", "'likelihood' must be one of mse, bce"),
        ("arch", "resnet", "'arch' must be one of"),
        ("lr_factor", 1.5, "'lr_factor' must be between 0 and 1"),
    ],
)
def test_invalid_values_name_the_key(key, value, message):
    with pytest.raises(VaesweepError, match=message):
        TrainConfig.from_mapping({key: value}, "src")


def test_min_lr_above_lr_is_rejected():
    with pytest.raises(VaesweepError, match="'min_lr'"):
        TrainConfig(lr=1e-5, min_lr=1e-4)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("epochs=2", ("epochs", 2)),
        ("lr=1e-3", ("lr", 1e-3)),
        ("likelihood=bce", ("likelihood", "bce")),
        (' arch = "mlp" ', ("arch", "mlp")),
    ],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected


@pytest.mark.parametrize("text", ["epochs", "=2", "epochs="])
def test_malformed_override(text):
    with pytest.raises(VaesweepError, match="expected KEY=VALUE"):
        parse_override(text)


def test_a_setting_declared_without_its_rule_is_refused():
    @dataclasses.dataclass(frozen=True)
    class Careless:
        checked: int = setting(1, Rule("int", low=1))
        forgotten: int = 2  # a new field whose author forgot its rule

    with pytest.raises(TypeError, match="Careless.forgotten has no Rule"):
        rules(Careless)
    assert set(rules(TrainConfig)) == {f.name for f in dataclasses.fields(TrainConfig)}


def test_the_docs_settings_table_matches_the_declarations():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "studies.md").read_text()
    documented = {}
    for line in docs.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`") and cells[1] != "default":
            names = [n.strip("` ") for n in cells[0].split(",")]
            defaults = [d.strip() for d in cells[1].split(",")]
            if all(n in RULES for n in names) and len(names) == len(defaults):
                documented |= dict(zip(names, defaults, strict=True))
    assert set(documented) == set(RULES) - {"seed"}  # the seed is each trial's, never set
    defaults = TrainConfig()
    for name, shown in documented.items():
        assert parse_override(f"{name}={shown.strip('`')}")[1] == getattr(defaults, name), name
