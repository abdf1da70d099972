"""scripts/sweep_summary.py on a hand-made sweep file (the script is a tool, not part of the package)."""

import importlib.util
import json
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "sweep_summary.py"
_spec = importlib.util.spec_from_file_location("sweep_summary", _PATH)
sweep_summary = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sweep_summary)


def _cfg(bm, split_k=1):
    return dict(block_m=bm, block_n=128, block_kp=32, num_warps=8, num_stages=4, split_k=split_k)


def test_fastest_tiles_first_with_rules_and_dequant_beside():
    records = [
        dict(kind="env", gpu="H100"),
        dict(kind="point", n=4096, k=4096, m=256, path="auto", us=20.0, cublas_us=19.0, speedup=0.95),
        dict(kind="point", n=4096, k=4096, m=256, path="dequant", us=30.0, cublas_us=19.0, speedup=0.63),
        dict(kind="sweep", n=4096, k=4096, m=256, cfg=_cfg(128), us=25.0, repeat_equal=True),
        dict(kind="sweep", n=4096, k=4096, m=256, cfg=_cfg(64, 2), us=19.0, repeat_equal=False),
        dict(kind="sweep_error", n=4096, k=4096, m=256, cfg=_cfg(256), err="OutOfResources"),
    ]
    out = sweep_summary.summarise([json.dumps(r) for r in records], top=1)
    assert out[0].startswith("error 4096x4096 M=256 256x128x32x8x4 split 1: OutOfResources")
    assert out[1] == "4096x4096 M=256: cuBLAS 19.0 us, auto 20.0 (x0.95), dequant 30.0"
    assert len(out) == 3
    assert out[2].split() == ["64x128x32x8x4", "split", "2", "19.0", "us", "x1.00", "NOT", "REPEATABLE"]


def test_the_weight_decode_is_named_where_recorded():
    assert sweep_summary.tile_name(_cfg(128)) == "128x128x32x8x4 split 1"
    assert sweep_summary.tile_name({**_cfg(128), "code_pairs": True}) == "128x128x32x8x4 split 1 pairs"
    assert sweep_summary.tile_name({**_cfg(128), "code_pairs": False}) == "128x128x32x8x4 split 1 bytes"
