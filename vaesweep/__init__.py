"""vaesweep: hyperparameter studies of variational autoencoders on Fashion-MNIST."""

__version__ = "0.1.0"
