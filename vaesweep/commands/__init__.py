"""The `vaesweep` commands, a module each: its options and a thin function that calls the
library and prints what it returns (`vaesweep.cli` registers them)."""
