"""Stage 2, one VAE: data, model, losses, the training loop (alone or as a population),
validation and the final fp32 evaluation, on a device and precision decided once. Never
imports Optuna."""
