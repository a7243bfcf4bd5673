#!/usr/bin/env bash
# The GPU check: one call on a lent GPU machine, from the repository root, under 8 minutes.
# Everything it writes goes under $OUT (default ./gpu-out): the environment, `vaesweep bench`
# per network and precision with populations of 1 to 32, a profiler table of training steps,
# and one short real conv study at --population auto and at 1, nvidia-smi sampled during each.
#
# That machine has PyTorch but no package registry: the other packages vaesweep needs travel
# with the tree as wheels in .whl/ (benchmarks/gpu_wheels.sh fetches them, here).
# GPU_CHECK_DEVICE=cpu runs the same steps on the CPU, short, to check the script itself
# (PYTHON=.venv/bin/python: a Python that has vaesweep's dependencies).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$ROOT/gpu-out}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1

if ! $PY -c "import optuna" 2>/dev/null && compgen -G "$ROOT/.whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site "$ROOT"/.whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
VAESWEEP=($PY -m vaesweep)
if [ "$DEVICE" = cuda ]; then
    SECONDS_EACH=2 POPULATION=32 EPOCHS=3 TRAIN=10000 EVAL=1000 TRIAL_STUDY=warmup
else  # the same steps, small: a check of the script, not of the machine
    SECONDS_EACH=0.2 POPULATION=2 EPOCHS=1 TRAIN=500 EVAL=200 TRIAL_STUDY=""
fi

step() { echo "== $(date +%T) $*"; }
sample_gpu() {  # nvidia-smi every 250 ms into $OUT/smi-$1.csv while a step runs
    SAMPLER=""
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used,power.draw --format=csv \
            -lms 250 >"$OUT/smi-$1.csv" & SAMPLER=$!
    fi
}
stop_sampling() { [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null; }

step environment
command -v nvidia-smi >/dev/null && nvidia-smi -q >"$OUT/smi-q.txt"
$PY -c "import torch, vaesweep; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), \
'vaesweep', vaesweep.__version__)" || exit 1

# The real data where the machine has it; else synthetic IDX files of the real sizes (the
# throughput is the same; the metrics are not worth reading).
DATA=${VAESWEEP_DATA:-/usr/share/datasets/fashion-mnist}
if ! compgen -G "$DATA/train-images*" >/dev/null; then
    DATA=/tmp/gpu-check-data
    step "synthetic data in $DATA"
    $PY -c "import sys; from pathlib import Path; from vaesweep.training.data import write_synthetic; write_synthetic(Path(sys.argv[1]), 60000, 10000, gz=False)" "$DATA" || exit 1
fi

step "bench: mlp and conv, fp32 and bf16, populations 1 to $POPULATION"
sample_gpu bench
timeout 240 "${VAESWEEP[@]}" bench --device "$DEVICE" --arch mlp --arch conv \
    --seconds "$SECONDS_EACH" --population "$POPULATION" --trial-study "$TRIAL_STUDY" \
    --precision-epochs 1 --data-dir "$DATA" --json >"$OUT/bench.json" 2>"$OUT/bench.txt"
echo "bench rc $?"
stop_sampling

step "profiler: 20 training steps of each network"
timeout 60 $PY "$ROOT/benchmarks/profile_step.py" "$DEVICE" >"$OUT/profile.txt" 2>&1
echo "profile rc $?"

for population in auto 1; do
    step "a short conv study, --population $population"
    sample_gpu "run-$population"
    started=$SECONDS
    rm -rf "/tmp/gpu-check-$population"
    timeout 100 "${VAESWEEP[@]}" run --study warmup --trials 6 --device "$DEVICE" \
        --population "$population" --set arch=conv --set epochs="$EPOCHS" \
        --set train_subset="$TRAIN" --set eval_images="$EVAL" --set ssim_images="$EVAL" \
        --set iwae_samples=0 --results "/tmp/gpu-check-$population" \
        --data-dir "$DATA" >"$OUT/run-$population.txt" 2>&1
    echo "population $population rc $? $((SECONDS - started)) s"
    stop_sampling
done
step done
