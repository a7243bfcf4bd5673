"""Whether a study trained in bf16 answers as the same study in fp32: the per-place differences
bf16 - fp32 of each compared metric (the same configuration and seed block, so the same seed),
their mean with a 95% t interval, and the two answers. Run on two results folders of the same
blocked study: .venv/bin/python benchmarks/precision_equivalence.py FP32_DIR BF16_DIR [STUDY]
(see BENCHMARKS.md)."""

import math
import sys
from pathlib import Path

from scipy import stats

from vaesweep import results

METRICS = ("val_knn_accuracy", "val_loss", "val_ssim", "test_knn_accuracy")


def main(fp32: Path, bf16: Path, study: str) -> None:
    runs = {
        name: results.load(study, results=folder)
        for name, folder in (("fp32", fp32), ("bf16", bf16))
    }
    tables = {name: run.table[run.table["in_answer"]] for name, run in runs.items()}
    keys = [*runs["fp32"].params, "replicate"]
    paired = tables["fp32"].merge(tables["bf16"], on=keys, suffixes=("_fp32", "_bf16"))
    print(f"{len(paired)} places trained both ways ({study}, keyed by {', '.join(keys)})")
    print("| metric | mean bf16 - fp32 | 95% CI | SD of a difference | fp32's SD across blocks |")
    print("| --- | ---: | --- | ---: | ---: |")
    for metric in METRICS:
        if f"{metric}_fp32" not in paired:
            continue
        diff = paired[f"{metric}_bf16"] - paired[f"{metric}_fp32"]
        n, mean, sd = len(diff), diff.mean(), diff.std(ddof=1)
        half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
        spread = tables["fp32"].groupby(runs["fp32"].params)[metric].std(ddof=1).mean()
        interval = f"{mean - half:+.4g} to {mean + half:+.4g}"
        print(f"| {metric} | {mean:+.4g} | {interval} | {sd:.3g} | {spread:.3g} |")
    for name, run in runs.items():
        print(f"{name}: {run.answers[0].sentence}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "warmup")
