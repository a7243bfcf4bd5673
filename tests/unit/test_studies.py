from pathlib import Path

import optuna
import pytest

from vaesweep.errors import VaesweepError
from vaesweep.report.anchors import PUBLISHED
from vaesweep.spec.studies import available_studies, load_study, parse_study

SHIPPED = [
    "density",
    "joint",
    "latent",
    "likelihood",
    "likelihood-growing",
    "likelihood-tuned",
    "lr",
    "warmup",
    "warmup-tuned",
]


def minimal(**changes):
    raw = {
        "description": "test study",
        "objectives": ["val_loss"],
        "search": {"warmup_epochs": {"type": "int", "low": 0, "high": 4}},
        "fixed": {"arch": "mlp", "epochs": 3},
    }
    raw.update(changes)
    return raw


def test_shipped_studies_load_and_cover_the_four_dimensions():
    assert available_studies() == SHIPPED
    searched = {name: {p.name for p in load_study(name).search} for name in SHIPPED}
    assert searched["warmup"] == {"warmup_epochs"}
    assert searched["latent"] == {"latent_dim"}
    assert searched["lr"] == {"lr"}
    assert searched["likelihood"] == {"likelihood"}
    assert searched["joint"] == {"latent_dim", "warmup_epochs", "lr", "likelihood"}
    density = load_study("density")
    assert density.fixed["binarize"] and density.objectives == ("val_nll",)
    for name in ("warmup", "likelihood"):  # the tuned variant is the study with lr tuned
        fixed, tuned = load_study(name), load_study(f"{name}-tuned")
        assert tuned.search == fixed.search and [p.name for p in tuned.nuisance] == ["lr"]
        assert {**tuned.fixed, "lr": fixed.base.lr} == fixed.fixed
        assert fixed.base.lr in tuned.nuisance_grid[len(tuned.nuisance_grid) // 2].values()


def test_studies_varying_the_likelihood_score_on_likelihood_free_metrics():
    for name in ("likelihood", "joint"):
        assert set(load_study(name).objectives) <= {"val_mse", "val_ssim", "val_knn_accuracy"}


def test_an_installation_without_study_files_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr("vaesweep.spec.studies.STUDIES_DIR", tmp_path)
    with pytest.raises(VaesweepError, match="no study files in .*installation is incomplete"):
        available_studies()


def test_unknown_study_lists_the_available_ones():
    with pytest.raises(VaesweepError, match="unknown study 'nope' .*warmup"):
        load_study("nope")


def test_study_from_a_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        'description = "mine"\nobjectives = ["val_ssim"]\nexplore = 6\nconfirm_top = 2\n'
        '[search]\nlr = { type = "float", low = 1e-4, high = 1e-2, log = true }\n'
    )
    spec = load_study(str(path))
    assert spec.name == "mine" and spec.directions == ["maximize"]
    assert spec.design_summary() == "explore 6, then top 2 × 1 seed blocks; --trials 8"


def test_malformed_toml_is_reported_with_the_path(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("description = \n")
    with pytest.raises(VaesweepError, match="broken.toml: not valid TOML"):
        load_study(str(path))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"colour": "red"}, "unknown key 'colour'"),
        ({"objectives": ["test_ssim"]}, "unknown objective 'test_ssim'.*test metrics"),
        ({"objectives": []}, "'objectives' must be a non-empty list"),
        (
            {"search": {"warmup_epochs": {"type": "int", "low": 5, "high": 2}}},
            "'low' .* below 'high'",
        ),
        ({"search": {"lr": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}}, "log range"),
        (
            {"search": {"lr": {"type": "float", "low": 1e-4, "hi": 1.0}}},
            "search.lr: unknown key 'hi'",
        ),
        (
            {"search": {"depth": {"type": "int", "low": 1, "high": 3}}},
            "search.depth is not a training",
        ),
        (
            {"search": {"latent_dim": {"type": "int", "low": 0, "high": 3}}},
            "'latent_dim' must be a positive",
        ),
        (
            {"search": {"likelihood": {"type": "categorical", "choices": ["mse", "gauss"]}}},
            "likelihood",
        ),
        (
            {"search": {"val_size": {"type": "int", "low": 10, "high": 20}}},
            "val_size cannot be searched",
        ),
        (
            {"search": {"precision": {"type": "categorical", "choices": ["fp32", "bf16"]}}},
            "precision cannot be searched: it is decided once per run",
        ),
        ({"fixed": {"epochs": 3, "warmup_epochs": 1}}, "both searched and fixed"),
        ({"fixed": {"epoch": 3}}, "unknown setting 'epoch'"),
        ({"sampler": {"name": "tpe"}}, "a grid study runs every configuration"),
        ({"explore": 4, "sampler": {"name": "cmaes"}}, "sampler.name must be one of"),
        ({"pruner": {"name": "median", "metric": "val_elbo"}}, "pruner.metric is no longer set"),
        ({"explore": 4, "pruner": {"name": "median", "warmup": 3}}, "unknown option 'warmup'"),
        ({"pruner": {"name": "median"}}, "a grid study compares every configuration"),
        ({"replicates": 0}, "'replicates' must be a positive integer"),
        (
            {"search": {"lr": {"type": "float", "low": 1e-4, "high": float("inf")}}},
            "'high' must be a finite number",
        ),
        ({"objectives": [["val_ssim"]]}, "'objectives' must be a non-empty list of metric names"),
        ({"explore": 4, "sampler": {"name": ["tpe"]}}, "sampler.name must be a name"),
        (
            {"explore": 4, "sampler": {"name": "nsga2", "population_size": 1}},
            "'population_size' must be an integer of at least 2",
        ),
        (
            {"search": {"lr": {"type": "categorical", "choices": [[1e-3], 1e-2]}}},
            "each choice must be a string, number or boolean",
        ),
        ({"confirm_top": 2}, "it needs 'explore = N' too"),
        ({"explore": 2, "confirm_top": 3}, "'confirm_top' \\(3\\) cannot exceed 'explore'"),
        (
            {"search": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2}}},
            "search.lr is continuous: a study over it needs 'explore = N'",
        ),
        ({"search": {}}, "\\[search\\] lists no setting, so there is nothing to compare"),
        ({"replicates": 10**10}, "'replicates' must be at most 1,000; got 10000000000"),
        (
            {
                "search": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
                "explore": 4,
                "pruner": {"name": "hyperband", "reduction_factor": 1},
            },
            "'reduction_factor' must be an integer of at least 2",
        ),
        (
            {"search": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "step": 1e-300}}},
            "'step' 1e-300 makes more than 1,000,000 values",
        ),
        (
            {
                "search": {
                    "train_subset": {"type": "int", "low": 0, "high": 10**7},
                    "ssim_images": {"type": "int", "low": 0, "high": 10**7},
                }
            },
            "the grid has 100000020000001 configurations",
        ),
        (
            {"search": {"train_subset": {"type": "int", "low": 0, "high": 10**10}}},
            "'train_subset' must be at most 10000000",
        ),
        ({"fixed": {"lr": 1e300}}, "'lr' must be at most 10.0; got 1e\\+300"),
        ({"fixed": {"early_stop_start": 1e308}}, "'early_stop_start' must be at most 100.0"),
        (
            {
                "search": {
                    "lr": {"type": "float", "low": 6e-5, "high": 1e-2, "log": True},
                    "min_lr": {"type": "float", "low": 1e-6, "high": 9e-5, "log": True},
                },
                "explore": 4,
                "confirm_top": 1,
            },
            "'min_lr' \\(9e-05\\) must not exceed 'lr' \\(6e-05\\) \\(searched together",
        ),
        ({"blocked": "yes"}, "'blocked' must be true or false; got 'yes'"),
        ({"equivalence": -0.01}, "equivalence.val_loss must be a positive number; got -0.01"),
        ({"equivalence": float("nan")}, "equivalence.val_loss must be a positive number"),
        ({"equivalence": {"val_ssim": 0.01}}, "equivalence.val_ssim is not one of the study's"),
        ({"noise": True}, "noise.val_loss must be a positive number; got True"),
        (
            {"objectives": ["val_loss", "val_ssim"], "noise": 0.1},
            "'noise' must be a table by objective",
        ),
    ],
)
def test_invalid_study_files_name_the_key(changes, message):
    with pytest.raises(VaesweepError, match=message):
        parse_study(minimal(**changes), "t", "t.toml")


def test_likelihood_scaled_objective_rejected_when_likelihood_varies():
    raw = minimal(search={"likelihood": {"type": "categorical", "choices": ["mse", "bce"]}})
    with pytest.raises(VaesweepError, match="val_loss' is on the likelihood's scale"):
        parse_study(raw, "t", "t.toml")


def test_multi_objective_study_cannot_prune():
    raw = minimal(objectives=["val_ssim", "val_knn_accuracy"], explore=4, pruner={"name": "median"})
    with pytest.raises(VaesweepError, match="cannot prune multi-objective"):
        parse_study(raw, "t", "t.toml")


def test_a_pruner_with_a_searched_warmup_is_refused():
    # Trials with longer warm-ups become prunable later, so pruning would favour them.
    raw = minimal(explore=4, confirm_top=1, pruner={"name": "median"})
    with pytest.raises(VaesweepError, match="warmup_epochs is searched.*remove \\[pruner\\]"):
        parse_study(raw, "t", "t.toml")


def test_a_pruner_needs_an_objective_computed_per_epoch():
    raw = minimal(
        objectives=["val_knn_accuracy"],
        search={"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        explore=4,
        pruner={"name": "median"},
    )
    with pytest.raises(VaesweepError, match="'val_knn_accuracy' is not computed per epoch"):
        parse_study(raw, "t", "t.toml")
    raw["objectives"] = ["val_loss"]
    assert parse_study(raw, "t", "t.toml").prune_metric == "val_elbo"


def test_shipped_studies_answer_with_replicates_at_equal_budgets():
    for name in SHIPPED:
        spec = load_study(name)
        assert spec.design.replicates >= 3, name
        if spec.design.samples:
            assert spec.design.confirm_top >= 2, name
    warmup = load_study("warmup")
    assert not warmup.design.samples and warmup.pruner["name"] == "none"
    assert warmup.design.trials_to_complete(len(warmup.grid)) <= 30
    assert warmup.design.replicates >= 4


def test_overrides_are_validated_like_the_file():
    spec = parse_study(minimal(), "t", "t.toml")
    assert spec.with_overrides({"epochs": 7}).fixed["epochs"] == 7
    with pytest.raises(VaesweepError, match="'warmup_epochs' is searched"):
        spec.with_overrides({"warmup_epochs": 2})
    with pytest.raises(VaesweepError, match="--set colour: unknown setting"):
        spec.with_overrides({"colour": 2})
    with pytest.raises(VaesweepError, match="'epochs' must be a positive integer"):
        spec.with_overrides({"epochs": -1})


def test_a_quick_look_may_skip_the_likelihood_unless_the_study_selects_on_it():
    quick = {"iwae_samples": 0, "eval_images": 1000}
    assert load_study("warmup").with_overrides(quick).base.iwae_samples == 0
    with pytest.raises(VaesweepError, match="objective 'val_nll' needs 'iwae_samples' of at least"):
        load_study("density").with_overrides(quick)
    # The published anchors were measured on the whole test set: never set beside a subset.
    anchor = PUBLISHED[0]
    assert anchor.applies_to({"latent_dim": 2})
    assert not anchor.applies_to({"latent_dim": 2, "eval_images": 1000})


def test_suggested_parameters_become_a_config():
    spec = parse_study(minimal(), "t", "t.toml")
    study = optuna.create_study()
    trial = study.ask()
    params = spec.suggest(trial)
    config = spec.config_for(params, seed=11)
    assert 0 <= config.warmup_epochs <= 4
    assert (config.arch, config.epochs, config.seed) == ("mlp", 3, 11)


def test_definition_changes_with_fixed_settings_but_not_description():
    spec = parse_study(minimal(), "t", "t.toml")
    assert (
        spec.definition() == parse_study(minimal(description="other"), "t", "t.toml").definition()
    )
    assert spec.definition() != spec.with_overrides({"epochs": 4}).definition()
    # How the answer is read (a margin, the noise measured here) is not what is trained.
    read = parse_study(minimal(equivalence=0.5, noise={"val_loss": 1.2}), "t", "t.toml")
    assert read.definition() == spec.definition() and read.equivalence == {"val_loss": 0.5}
    assert spec.definition()["design"]["blocked"] is True
    unblocked = parse_study(minimal(blocked=False), "t", "t.toml")
    assert unblocked.definition()["design"]["blocked"] is False


def test_the_docs_show_the_shipped_warmup_study_as_it_is():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "studies.md").read_text()
    block = docs.split("A study file (`studies/warmup.toml`, as shipped):\n\n```toml\n")[1]
    shipped = Path(load_study("warmup").source).read_text()
    assert block.split("```")[0] == shipped


def test_each_shipped_study_says_what_its_design_detects():
    """How much better than every other one a configuration must be for the shipped procedure
    to name it the best with 80% power, at the design's look (82% of the 5%, shared by the
    objectives)."""
    from vaesweep.stats.pairwise import ALPHA
    from vaesweep.stats.power import detectable
    from vaesweep.stats.sequential import spent

    for name in SHIPPED:
        spec = load_study(name)
        detects = spec.detects()
        if spec.compared < 2:  # the density study compares nothing
            assert detects == {}, name
            continue
        assert set(detects) == set(spec.objectives), name  # each objective's noise was measured
        r, k, most = spec.design.replicates, spec.compared, spec.design.most_blocks
        level = spent(r / most, ALPHA)  # the design's look: by default half the most replicates
        assert level >= 0.75 * ALPHA or spec.design.until_decided, name
        for objective, sd in spec.noise.items():
            expected = detectable(sd, k, r, True, level / len(spec.objectives))["winner"]
            assert detects[objective] == pytest.approx(expected), name
        if spec.design.until_decided:  # its last look, after one at every block before it
            last = spent(1.0, ALPHA) - spent((most - 1) / most, ALPHA)
            for objective, sd in spec.noise.items():
                expected = detectable(sd, k, most, True, last / len(spec.objectives))["winner"]
                assert spec.detects(most)[objective] == pytest.approx(expected), name
                assert spec.detects(most)[objective] < detects[objective]
