"""vaesweep: hyperparameter studies of variational autoencoders on Fashion-MNIST."""

import warnings

__version__ = "0.1.0"

# Optuna imports tqdm.auto, which warns "IProgress not found" in a Jupyter kernel without
# ipywidgets; vaesweep never shows an Optuna progress bar, so the warning says nothing of use.
warnings.filterwarnings("ignore", message="IProgress not found")
