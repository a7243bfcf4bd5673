"""The package as a user installs it: a wheel, used from another folder."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The wheel built from this checkout, installed (without dependencies) into a folder."""
    pytest.importorskip("setuptools")
    build = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(build),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = build.glob("vaesweep-*.whl")
    shipped = zipfile.ZipFile(wheel).namelist()
    assert {
        "vaesweep/spec/study_files/warmup.toml",
        "vaesweep/report/templates/index.html.j2",
    } <= set(shipped)
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    return target


def run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    code = "import sys, vaesweep.cli; sys.argv[0] = 'vaesweep'; vaesweep.cli.main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(site), "COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def test_an_installed_wheel_lists_the_shipped_studies_from_another_folder(installed, tmp_path):
    where = run_installed(installed, tmp_path, "--version")
    assert where.returncode == 0, where.stderr
    outcome = run_installed(installed, tmp_path, "studies")
    assert outcome.returncode == 0, outcome.stderr
    for name in ("density", "joint", "latent", "likelihood", "lr", "warmup"):
        assert f"\n{name}: " in f"\n{outcome.stdout}"
    origin = subprocess.run(
        [sys.executable, "-c", "import vaesweep; print(vaesweep.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(installed)},
    )
    assert origin.stdout.startswith(str(installed))  # the wheel's copy, not this checkout


def test_the_repository_studies_folder_is_the_package_data():
    assert (ROOT / "studies").resolve() == (ROOT / "vaesweep" / "spec" / "study_files").resolve()


def reachable(url: str) -> bool:
    probe = ROOT / "scripts" / "reachable.py"
    return subprocess.run([sys.executable, str(probe), url], timeout=30).returncode == 0


def test_the_install_probe_tells_an_answering_server_from_none(tmp_path):
    """scripts/install.sh asks PyTorch's index only when this probe says its server answers."""
    import http.server
    import socket
    import threading

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        assert reachable(f"http://127.0.0.1:{port}/")
        assert reachable(f"http://127.0.0.1:{port}/no/such/page/")  # 404 is an answer
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        assert not reachable(f"http://127.0.0.1:{port}/")
    assert not reachable("https://no-such-host.invalid/whl/")
    assert not reachable("not a url")


PUBLIC_IN_A_FRESH_PROCESS = """
import sys
import vaesweep
print("torch" in sys.modules, "optuna" in sys.modules)
from vaesweep.results import load_model
from vaesweep import results, stats
assert vaesweep.load_model is load_model and vaesweep.results is results
assert callable(stats.compare) and callable(results.load)
"""


def test_the_public_api_is_at_the_top():
    """`import vaesweep` imports neither PyTorch nor Optuna; `vaesweep.load_model`, `.results`
    and `.stats` are there on first use."""
    outcome = subprocess.run(
        [sys.executable, "-c", PUBLIC_IN_A_FRESH_PROCESS], capture_output=True, text=True
    )
    assert outcome.returncode == 0, outcome.stderr
    assert outcome.stdout.split("\n")[0] == "False False"
    import vaesweep

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        vaesweep.nope  # noqa: B018
