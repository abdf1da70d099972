import subprocess
import sys

import bitmat_kernels as bk
import pytest
import torch
from bitmat_kernels.backend import use_triton


def test_set_and_restore():
    assert bk.get_backend() == "auto"
    with bk.use_backend("reference"):
        assert bk.get_backend() == "reference"
        assert not use_triton(torch.zeros(1))
    assert bk.get_backend() == "auto"


def test_auto_uses_reference_on_cpu():
    assert not use_triton(torch.zeros(1))


def test_bad_backend_name():
    with pytest.raises(ValueError, match="must be one of"):
        bk.set_backend("cuda")


def test_triton_on_cpu_without_interpreter_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with bk.use_backend("triton"), pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        use_triton(torch.zeros(1))


def test_import_does_no_gpu_work_and_no_triton_import():
    code = (
        "import sys, torch\n"
        "import bitmat_kernels\n"
        "assert 'triton' not in sys.modules, 'importing bitmat_kernels imported triton'\n"
        "assert not torch.cuda.is_initialized(), 'importing bitmat_kernels initialised CUDA'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
