"""Stage 5, reading a study: its trials table and answer, the statistics behind it, the figures,
the page, studies side by side, and the answer where Optuna's tools look. Read-only."""
