"""The environment block every result carries: device, driver, CUDA, library versions, date, command."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import importlib.util
import logging
import os
import platform
import re
import shlex
import subprocess
import sys

import torch

log = logging.getLogger(__name__)

CPU_NOTICE = "no CUDA device: running the pure-torch reference on the CPU; numbers are not GPU performance"

_DISTRIBUTIONS = (
    "bitmat-kernels",
    "bitmat-nn",
    "bitmat-hf",
    "bitmat-bench",
    "triton",
    "transformers",
    "accelerate",
    "gemlite",
    "bitmat-tl",
    "numpy",
    "matplotlib",
)


def has_cuda() -> bool:
    try:
        return torch.cuda.is_available() and torch.cuda.device_count() > 0
    except Exception:  # pragma: no cover
        return False


def default_device() -> torch.device:
    return torch.device("cuda") if has_cuda() else torch.device("cpu")


def dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except Exception:
        return None


def module_version(module: str) -> str | None:
    """__version__ of an already importable module (without importing anything heavy on failure)."""
    try:
        mod = __import__(module)
        return str(getattr(mod, "__version__", None) or "") or None
    except Exception:
        return None


def _about_version(package: str) -> str | None:
    """__version__ from a workspace package's __about__.py, read as text: importing bitmat_hf would
    import transformers just to learn a version."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    about = os.path.join(next(iter(spec.submodule_search_locations)), "__about__.py")
    try:
        with open(about, encoding="utf-8") as f:
            match = re.search(r'__version__\s*=\s*"([^"]+)"', f.read())
    except OSError:
        return None
    return match.group(1) if match else None


def gpu_name(device: torch.device | None = None) -> str:
    if not has_cuda():
        return "cpu"
    try:
        return torch.cuda.get_device_name(device)
    except Exception:  # pragma: no cover
        return "cuda"


def slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s or "unknown"


def gpu_slug(device: torch.device | None = None) -> str:
    return slug(gpu_name(device))


def _driver_version() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
        line = out.stdout.strip().splitlines()
        return line[0].strip() if out.returncode == 0 and line else None
    except Exception:
        return None


def _git_commit() -> str | None:
    if os.environ.get("BITMAT_BENCH_GIT_COMMIT"):  # for copies of a checkout without .git
        return os.environ["BITMAT_BENCH_GIT_COMMIT"]
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run(
            ["git", "-C", here, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if out.returncode != 0:
            return None
        commit = out.stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return commit + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    except Exception:
        return None


_SOURCE_MODULES = ("bitmat_kernels", "bitmat_nn", "bitmat_hf", "bitmat_bench")


def source_digest(roots: list[str] | None = None) -> str | None:
    """12 hex digits of SHA-256 over the BitMat packages' Python sources that ran (relative path + bytes of every
    .py file, sorted). Unlike git_commit it cannot go stale on a copy of the tree: compute it at a commit
    (`python -c "from bitmat_bench.env import source_digest; print(source_digest())"`) to find which one ran."""
    import hashlib
    import importlib.util

    if roots is None:
        roots = []
        for mod in _SOURCE_MODULES:
            try:
                spec = importlib.util.find_spec(mod)
            except (ImportError, ValueError):
                spec = None
            if spec is not None and spec.submodule_search_locations:
                roots.extend(spec.submodule_search_locations)
    if not roots:
        return None
    h = hashlib.sha256()
    for root in sorted(roots):
        name = os.path.basename(root.rstrip(os.sep))
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for fn in sorted(filenames):
                if fn.endswith(".py"):
                    path = os.path.join(dirpath, fn)
                    h.update(os.path.join(name, os.path.relpath(path, root)).encode())
                    with open(path, "rb") as f:
                        h.update(f.read())
    return h.hexdigest()[:12]


def command_line(argv: list[str] | None = None) -> str:
    """The command as a user would type it again: `bitmat-bench <args>`."""
    args = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["bitmat-bench", *args])


def environment(argv: list[str] | None = None) -> dict:
    """Everything a result needs to be read and reproduced."""
    cuda = has_cuda()
    env: dict = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(argv),
        "argv": list(sys.argv),
        "device": "cuda" if cuda else "cpu",
        "gpu": gpu_name() if cuda else None,
        "gpu_slug": gpu_slug(),
        "cpu_mode": not cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "git_commit": _git_commit(),
        "source_digest": source_digest(),
        "env_vars": {
            k: os.environ[k]
            for k in ("TRITON_INTERPRET", "BITMAT_KERNELS_BACKEND", "CUDA_VISIBLE_DEVICES", "PYTHONPATH")
            if k in os.environ
        },
    }
    versions = {name: dist_version(name) for name in _DISTRIBUTIONS}
    # Editable checkouts on PYTHONPATH have no distribution metadata: ask the modules.
    for dist, mod in (("bitmat-kernels", "bitmat_kernels"), ("bitmat-bench", "bitmat_bench"), ("triton", "triton")):
        if versions.get(dist) is None:
            versions[dist] = module_version(mod)
    for dist, mod in (("bitmat-nn", "bitmat_nn"), ("bitmat-hf", "bitmat_hf")):
        if versions.get(dist) is None:
            versions[dist] = _about_version(mod)
    env["versions"] = versions
    if cuda:
        try:
            props = torch.cuda.get_device_properties(torch.cuda.current_device())
            env.update(
                {
                    "driver": _driver_version(),
                    "compute_capability": f"{props.major}.{props.minor}",
                    "sm_count": props.multi_processor_count,
                    "gpu_memory_bytes": props.total_memory,
                    "l2_cache_bytes": int(getattr(props, "L2_cache_size", 0) or 0) or None,
                    "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                }
            )
        except Exception as e:  # pragma: no cover - GPU only
            env["device_error"] = f"{type(e).__name__}: {e}"
    else:
        env["cpu"] = platform.processor() or platform.machine()
        env["threads"] = torch.get_num_threads()
        env["notice"] = CPU_NOTICE
    return env


__all__ = [
    "CPU_NOTICE",
    "command_line",
    "default_device",
    "dist_version",
    "environment",
    "gpu_name",
    "gpu_slug",
    "has_cuda",
    "slug",
]
