"""`python -m vaesweep`: the same as the `vaesweep` command."""

from vaesweep.cli import program

program()
