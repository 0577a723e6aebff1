"""How the worker starts: it dies with its parent from the first moment (before numpy and
ONNX Runtime take seconds to import), and nothing in the working directory can stand in for
a module it imports."""

import os
import subprocess
import sys

from conftest import ROOT


def run(args, cwd=ROOT):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_the_death_signal_is_set_before_anything_heavy_is_imported():
    probe = (
        "import ctypes, signal, sys\n"
        "import orion_worker.__main__\n"
        "sig = ctypes.c_int(0)\n"
        "ctypes.CDLL(None).prctl(2, ctypes.byref(sig))\n"  # PR_GET_PDEATHSIG
        "print(sig.value == signal.SIGTERM, 'numpy' in sys.modules, 'onnxruntime' in sys.modules)\n"
    )
    out = run(["-c", probe])
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "False", "False"], out.stdout


def test_a_module_in_the_working_directory_is_not_imported(tmp_path):
    # The bridge runs `python -P -m orion_worker` in `/`; here a hostile working directory.
    (tmp_path / "argparse.py").write_text("raise SystemExit(42)\n")
    out = run(["-P", "-m", "orion_worker", "--help"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "--tensors" in out.stdout
    # Without -P the same directory would win: the flag is what protects.
    out = run(["-m", "orion_worker", "--help"], cwd=tmp_path)
    assert out.returncode == 42
