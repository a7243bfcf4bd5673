"""Stage 3, what is kept: the Optuna storage and its attribute names, the results folder's
names, and each trial's folder (weights, history, metrics) bound to its record."""
