"""The metric catalogue: what studies may select on, what a pruner compares, and the labels."""

from vaesweep.spec.metric_names import (
    LIKELIHOOD_SCALED,
    OBJECTIVE_DIRECTIONS,
    PER_EPOCH,
    TABLE_COLUMNS,
    label,
)


def test_studies_select_on_validation_metrics_only_with_their_directions():
    assert OBJECTIVE_DIRECTIONS == {
        "val_loss": "minimize",
        "val_recon": "minimize",
        "val_kl": "minimize",
        "val_nll": "minimize",
        "val_mse": "minimize",
        "val_ssim": "maximize",
        "val_knn_accuracy": "maximize",
    }
    assert PER_EPOCH == {
        "val_loss": "val_elbo",
        "val_recon": "val_recon",
        "val_kl": "val_kl",
        "val_mse": "val_mse",
    }
    assert LIKELIHOOD_SCALED == {"val_loss", "val_recon", "val_nll"}


def test_the_table_has_both_splits_and_the_notebook_protocol():
    assert TABLE_COLUMNS[:2] == ("val_loss", "val_recon")
    assert {"test_knn_accuracy", "test_active_units", "test_knn_notebook"} <= set(TABLE_COLUMNS)
    assert "val_knn_notebook" not in TABLE_COLUMNS


def test_labels():
    assert label("val_knn_accuracy") == "val 5-NN accuracy"
    assert label("test_nll") == "test −log p(x) (nats)"
    assert label("test_knn_notebook") == "test 5-NN (notebook protocol)"
    assert label("objective_0") == "objective_0"  # a plain Optuna study's value, as it is
