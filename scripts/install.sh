#!/bin/sh
# Makes the virtual environment VENV with vaesweep (editable, with EXTRAS such as "[test]").
#
# uv installs (37 s against pip's 76 s on the development machine, BENCHMARKS.md). PyTorch
# comes from PyTorch's own index through uv's --torch-backend=auto: the CPU build (under 1 GB)
# on a machine without a GPU, the build for the installed CUDA driver on one with. Where that index is out of reach, one line
# says so and PyPI's build is taken: CUDA's libraries included (about 5 GB), it runs on a CPU too.
# constraints.txt holds the PyTorch release the tests and the documented results ran on.
set -eu
venv=${1:?usage: scripts/install.sh VENV [EXTRAS]}
extras=${2:-}
torch_index=${VAESWEEP_TORCH_INDEX:-https://download.pytorch.org/whl/}
here=$(dirname "$0")

python3 -m venv "$venv"
"$venv/bin/pip" install -q uv
# --compile-bytecode: pip compiles on install, uv does not by default; without it, every new
# process compiles the modules it imports again where bytecode is not written (CI).
install() {
    "$venv/bin/uv" pip install -q --compile-bytecode --python "$venv/bin/python" \
        -c "$here/../constraints.txt" "$@"
}

if "$venv/bin/python" "$here/reachable.py" "$torch_index"; then
    install --torch-backend=auto torch torchvision
else
    echo "install: PyTorch's index ($torch_index) is out of reach; taking PyPI's PyTorch (with CUDA, about 5 GB; it runs on the CPU too)"
fi
install -e "$here/..$extras"
