"""The notebook's network trained by the notebook's own Keras code and by vaesweep, alternated in
one run (BENCHMARKS.md, "The notebook's network against Keras"). Each turn is a fresh process
that trains two epochs over the same number of random images at batch 128 with the MSE loss and
Adam, and reports the second epoch (the first traces, compiles and warms the caches):

    .venv/bin/python benchmarks/keras_speed.py --tf-python /tmp/tf/bin/python [--threads 2]

TensorFlow is never a dependency: it runs from a scratch environment (`pip install tensorflow-cpu
keras`), which `--tf-python` names.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

BATCH = 128


def keras_epoch(images: int, threads: int) -> float:
    """Samples/s of the notebook's `VAE.fit` (section 4.3.4: its layers, its train_step)."""
    import keras
    import numpy as np
    import tensorflow as tf
    from tensorflow.keras import layers, models, ops

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    inputs = layers.Input(shape=(28, 28, 1))
    h = layers.Conv2D(128, 5, padding="same", activation="relu")(inputs)
    h = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(h)
    h = layers.Conv2D(64, 3, padding="same", activation="relu")(h)
    h = layers.Conv2D(64, 3, padding="same", activation="relu")(h)
    h = layers.Dense(32, activation="relu")(layers.Flatten()(h))
    mu, log_var = layers.Dense(2)(h), layers.Dense(2)(h)

    class Sampling(layers.Layer):  # the notebook's
        def call(self, inputs):
            mu, log_var = inputs
            epsilon = keras.random.normal(shape=(ops.shape(mu)[0], ops.shape(mu)[1]))
            return mu + ops.exp(0.5 * log_var) * epsilon

    z = Sampling()([mu, log_var])
    encoder = models.Model(inputs, [mu, log_var, z])
    latent = layers.Input(shape=(2,))
    h = layers.Reshape((14, 14, 64))(layers.Dense(14 * 14 * 64, activation="relu")(latent))
    h = layers.Conv2DTranspose(64, 3, padding="same", activation="relu")(h)
    h = layers.Conv2DTranspose(64, 3, padding="same", activation="relu")(h)
    h = layers.Conv2DTranspose(64, 3, strides=2, padding="same", activation="relu")(h)
    h = layers.Conv2DTranspose(128, 5, padding="same", activation="relu")(h)
    out = layers.Conv2DTranspose(1, 5, padding="same", activation="sigmoid")(h)
    decoder = models.Model(latent, out)

    class VAE(tf.keras.Model):
        def train_step(self, data):
            x = data
            with tf.GradientTape() as tape:
                z_mean, z_log_var, z = encoder(x, training=True)
                x_recon = decoder(z, training=True)
                recon = ops.mean(ops.sum(ops.square(x - x_recon), axis=[1, 2, 3]))
                kl = ops.mean(
                    0.5 * ops.sum(ops.square(z_mean) + ops.exp(z_log_var) - z_log_var - 1.0, 1)
                )
                total = recon + kl
            weights = self.trainable_weights
            self.optimizer.apply_gradients(zip(tape.gradient(total, weights), weights, strict=True))
            return {"loss": total}

    vae = VAE(inputs, decoder(encoder(inputs)[2]))
    vae.compile(optimizer=tf.keras.optimizers.Adam(1e-4))
    x = np.random.default_rng(0).random((images, 28, 28, 1), dtype=np.float32)
    vae.fit(x, batch_size=BATCH, epochs=1, verbose=0)
    started = time.perf_counter()
    vae.fit(x, batch_size=BATCH, epochs=1, verbose=0)
    return images / (time.perf_counter() - started)


def vaesweep_epoch(images: int, threads: int) -> float:
    """Samples/s of the epoch vaesweep's trainer runs (`train._train_epoch`), fp32."""
    import torch

    from vaesweep.spec.config import TrainConfig
    from vaesweep.training.device import memory_format, prepare_training
    from vaesweep.training.model import build_model
    from vaesweep.training.precision import decide
    from vaesweep.training.train import _train_epoch, make_optimizer

    torch.set_num_threads(threads)
    prepare_training(torch.device("cpu"))  # as the trainer does
    config = TrainConfig(arch="conv", likelihood="mse", batch_size=BATCH, lr=1e-4)
    model = build_model("conv", 2, seed=0)
    layout = memory_format(model)
    model = model.to(memory_format=layout)  # type: ignore[call-overload]
    optimizer = make_optimizer(model, config.lr)
    x = torch.rand(images, 1, 28, 28).contiguous(memory_format=layout)
    # fp32 with the Linear library a run would choose here (`precision.decide`)
    compute = decide("cpu", "fp32", "conv", BATCH, threads=threads)
    order = torch.Generator().manual_seed(0)
    _train_epoch(model, optimizer, x, config, compute, 1.0, order)
    started = time.perf_counter()
    _train_epoch(model, optimizer, x, config, compute, 1.0, order)
    return images / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tf-python", required=True, help="a Python with TensorFlow and Keras")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=BATCH * 40)
    parser.add_argument("--side", choices=["keras", "vaesweep"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:  # one turn, in its own process
        run = keras_epoch if args.side == "keras" else vaesweep_epoch
        print(json.dumps(run(args.images, args.threads)))
        return
    rates: dict[str, list[float]] = {"keras": [], "vaesweep": []}
    for _ in range(args.rounds):
        for side, python in (("keras", args.tf_python), ("vaesweep", sys.executable)):
            turn = [python, __file__, "--tf-python", args.tf_python, "--side", side]
            turn += ["--threads", str(args.threads), "--images", str(args.images)]
            done = subprocess.run(turn, capture_output=True, text=True, check=True)
            rates[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
    for side, values in rates.items():
        shown = ", ".join(f"{v:.0f}" for v in values)
        print(f"{side}: median {statistics.median(values):.0f} samples/s ({shown})")
    ratio = statistics.median(rates["vaesweep"]) / statistics.median(rates["keras"])
    print(f"vaesweep / keras: {ratio:.2f}x")


if __name__ == "__main__":
    main()
