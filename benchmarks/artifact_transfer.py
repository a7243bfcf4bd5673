"""What an artifact store costs a trial: the seconds to upload a trial folder of the main job's
network (the default study's `conv`, and the `mlp`) and to fetch it back, into a folder store
and into an S3 bucket on loopback (moto's server, tests/s3_server.py):

    python benchmarks/artifact_transfer.py --rounds 5

The folder is a real one: `save_trial` writes the network's weights and a test set's latent
means as a run does. Each round uploads with `upload_folder` (the run's code) to a fresh trial
and fetches with `TrialFiles.fetch` (the readers' code) into a new folder; the median is shown.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def folder_of(arch: str, root: Path) -> Path:
    import torch

    from vaesweep.spec.config import TrainConfig
    from vaesweep.store.artifacts import save_trial
    from vaesweep.training.model import build_model

    config = TrainConfig(arch=arch)
    model = build_model(config.arch, config.latent_dim)
    history = [{"epoch": e, "val_loss": 1.0} for e in range(config.epochs)]
    latents = (torch.zeros(10_000, config.latent_dim), torch.zeros(10_000, dtype=torch.long))
    return save_trial(root / arch / "trial-0000", config, history, {}, model, latents)


def timed(store, where: str, folder: Path, rounds: int, root: Path) -> tuple[float, float]:
    import optuna

    from vaesweep.store.artifact_store import TrialFiles, upload_folder

    storage = optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage)
    uploads, fetches = [], []
    for i in range(rounds):
        trial = study.ask()
        started = time.perf_counter()
        upload_folder(store, where, trial, folder)
        uploads.append(time.perf_counter() - started)
        study.tell(trial, 0.0)
        frozen = study.get_trials()[-1]
        started = time.perf_counter()
        assert TrialFiles(store, storage).fetch(frozen, root / f"fetched-{i}" / "trial") is None
        fetches.append(time.perf_counter() - started)
    return statistics.median(uploads), statistics.median(fetches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import os

    from s3_server import BUCKET, s3_server

    from vaesweep.store.artifact_store import open_store
    from vaesweep.store.storage import quiet_optuna

    quiet_optuna()
    with tempfile.TemporaryDirectory() as scratch, s3_server() as s3:
        root = Path(scratch)
        os.environ.update(s3.env())
        (root / "store").mkdir()
        stores = {
            "folder": (open_store(str(root / "store")), str(root / "store")),
            "S3 on loopback": (open_store(f"s3://{BUCKET}/bench"), f"s3://{BUCKET}/bench"),
        }
        print("| network | folder MB | store | upload s | fetch s |")
        print("| --- | ---: | --- | ---: | ---: |")
        for arch in ("conv", "mlp"):
            folder = folder_of(arch, root)
            size = sum(f.stat().st_size for f in folder.iterdir()) / 1e6
            for name, (store, where) in stores.items():
                up, down = timed(store, where, folder, args.rounds, root / arch / name)
                print(f"| {arch} | {size:.1f} | {name} | {up:.3f} | {down:.3f} |")


if __name__ == "__main__":
    main()
