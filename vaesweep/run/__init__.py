"""Stage 4, running a study: the checks before training, the workers and their loop, the
objective that turns an Optuna trial into a training run, and the progress views."""
