"""Workers over GPUs: which device each worker trains on, and how many workers `--jobs auto`
starts, as functions of the worker index and the counts (no GPU needed)."""

from __future__ import annotations

import torch

from vaesweep.console import make_console
from vaesweep.run.progress import PlainProgress
from vaesweep.training.device import Compute, auto_jobs, placed, visible_gpus


def test_worker_i_trains_on_gpu_i_mod_the_visible_gpus():
    run = Compute(torch.device("cuda"), "fp32")
    assert [placed(run, w, gpus=4).device for w in range(6)] == [
        torch.device("cuda", i) for i in (0, 1, 2, 3, 0, 1)
    ]
    assert {placed(run, w, gpus=1).device for w in range(3)} == {torch.device("cuda", 0)}
    assert placed(run, 5, gpus=4).precision == "fp32"  # only the device changes


def test_a_cpu_run_stays_where_it_is():
    run = Compute(torch.device("cpu"), "bf16")
    assert placed(run, 3, gpus=0) == run
    assert placed(run, 3, gpus=4) == run  # a --device cpu run on a GPU machine


def test_visible_gpus_are_torch_s_count_which_follows_cuda_visible_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    assert visible_gpus(torch.device("cuda")) == 3
    assert visible_gpus(torch.device("cpu")) == 0


def test_auto_jobs_is_one_per_gpu_and_on_the_cpu_one_per_core_at_most_four():
    assert auto_jobs(gpus=8, cores=16) == 8
    assert auto_jobs(gpus=1, cores=16) == 1
    assert auto_jobs(gpus=4, cores=2) == 2  # never more workers than cores to launch kernels
    assert auto_jobs(gpus=0, cores=2) == 2
    assert auto_jobs(gpus=0, cores=16) == 4
    assert auto_jobs(gpus=0, cores=1) == 1


def test_the_progress_names_each_trial_s_gpu():
    console = make_console(width=120, record=True)
    progress = PlainProgress(console)
    progress.trial_started(3, {"latent_dim": 2}, epochs=4, device="cuda:1")
    progress.trial_started(4, {"latent_dim": 8}, epochs=4, device="cpu")
    lines = console.export_text().splitlines()
    assert lines == ["trial 3 started on cuda:1: latent_dim=2", "trial 4 started: latent_dim=8"]


def test_the_live_view_names_each_trial_s_gpu():
    from vaesweep.run.progress import LiveProgress

    console = make_console(width=100, record=True, force_terminal=True, color_system=None)
    progress = LiveProgress(console)
    progress.start("warmup", ["val_loss"], target=2, finished=0)
    progress.stop()
    progress.trial_started(0, {"latent_dim": 2}, epochs=4, device="cuda:1")
    console.print(progress._render())
    [row] = [line for line in console.export_text().splitlines() if line.startswith("trial 0 ")]
    assert "cuda:1 latent_dim=2" in row
