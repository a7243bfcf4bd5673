"""vaesweep: hyperparameter studies of variational autoencoders on Fashion-MNIST.

The public Python API: `vaesweep.results` (a stored study's trials, answer and histories),
`vaesweep.stats` (the answer's statistics on any table) and `vaesweep.load_model` (a trained
network from its trial folder, or a stored study's trial). Each is imported when first used, so
`import vaesweep` stays quick and imports neither PyTorch nor Optuna.
"""

import importlib
import warnings

__version__ = "0.1.0"
__all__ = ["__version__", "load_model", "results", "stats"]

# Optuna imports tqdm.auto, which warns "IProgress not found" in a Jupyter kernel without
# ipywidgets; vaesweep never shows an Optuna progress bar, so the warning says nothing of use.
warnings.filterwarnings("ignore", message="IProgress not found")


# Public name -> (module, attribute; None: the module itself), imported on first use.
_PUBLIC = {
    "results": ("vaesweep.results", None),
    "stats": ("vaesweep.stats", None),
    "load_model": ("vaesweep.results", "load_model"),
}


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'vaesweep' has no attribute {name!r}")
    module, attribute = _PUBLIC[name]
    found = importlib.import_module(module)
    return found if attribute is None else getattr(found, attribute)
