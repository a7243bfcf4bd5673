"""Stage 1, what to run: a study file and its settings, the search space, the design and the
metrics' names. Torch-free, so the report and `vaesweep studies` read it quickly."""
