"""Stage 5, reading a study: its trials table and answer (from vaesweep.stats), the figures,
the page, studies side by side, and the answer where Optuna's tools look. It writes only the
answer and its looks to the study."""
