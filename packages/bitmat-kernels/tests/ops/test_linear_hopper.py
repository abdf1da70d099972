"""The Gluon sm_90 weight-only GEMM (ops/linear/hopper.py) without a GPU: its rules (configs.hopper_weight_only_config),
how linear_triton routes to it and falls back, and the kernel compiled for sm_90 by this Triton (Gluon moves between
Triton releases: the compile checks that the kernel still builds, and that ptxas kept its wgmmas asynchronous).
The results themselves are checked on an H100 (test_kernels_gpu.py)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import bitmat_kernels as bk
import bitmat_kernels.ops.linear.kernel as kernel
import pytest
import torch
from bitmat_kernels.ops.linear import configs, hopper
from bitmat_kernels.ops.linear.configs import HopperWeightOnlyConfig as Tile
from bitmat_kernels.ops.linear.reference import linear_reference

CUDA = torch.device("cuda", 0)


@pytest.fixture
def on_h100(monkeypatch):
    """The rules as on an H100 (no CUDA here: only the rules' own inputs are faked), no tuned tables."""
    monkeypatch.setattr(configs, "interpreter_enabled", lambda: False)
    monkeypatch.setattr(configs, "_is_sm90", lambda device: True)
    saved = [dict(t) for t in (configs.TUNED_GEMM, configs.TUNED_DEQUANT)]
    configs.TUNED_GEMM.clear()
    configs.TUNED_DEQUANT.clear()
    monkeypatch.delenv(configs.HOPPER_ENV, raising=False)
    yield
    for table, entries in zip((configs.TUNED_GEMM, configs.TUNED_DEQUANT), saved):
        table.clear()  # what a test added goes too
        table.update(entries)


@pytest.mark.parametrize(
    ("m", "n", "k", "tile"),
    [
        (7, 28672, 4096, None),  # fewer than 8 tokens stay on the Triton kernels and the planes
        (8, 28672, 4096, Tile(64, 8, 64, num_stages=4)),  # tall layers: short K steps
        (8, 57344, 8192, Tile(64, 8, 128)),
        (16, 28672, 4096, Tile(64, 16, 64, num_stages=4)),
        (9, 8192, 28672, Tile(64, 16, 256, num_stages=2)),  # K-heavy: long ones
        (16, 4096, 4096, Tile(64, 16, 128)),
        (32, 28672, 4096, Tile(64, 32, 64)),
        (17, 8192, 28672, Tile(64, 32, 64)),
        (64, 28672, 4096, Tile(128, 64, 64, num_warps=8, num_stages=2)),  # tall layers: 128 rows a program
        (33, 57344, 8192, Tile(128, 64, 64, num_warps=8, num_stages=2)),
        (64, 8192, 28672, Tile(64, 64, 128, num_stages=2)),
        (64, 4096, 14336, Tile(64, 64, 128, num_stages=2)),
        (64, 4096, 4096, Tile(64, 64, 64)),
        (64, 2560, 6912, None),  # fewer than 4096 rows lost at 64 tokens (v20)
        (64, 3840, 2560, None),  # layers of <= 12M weights were not swept below 129 tokens
        (128, 2560, 6912, Tile(64, 128, 64)),
        (100, 4096, 4096, Tile(64, 128, 64)),
        (128, 28672, 4096, Tile(128, 128, 32, num_warps=8)),
        (256, 4096, 4096, Tile(64, 128, 64)),  # 64-row tiles where 128 x 128 ones make too few programs
        (256, 3840, 2560, Tile(64, 128, 64)),
        (256, 8192, 28672, Tile(64, 128, 64)),
        (256, 28672, 4096, Tile(128, 128, 32, num_warps=8)),
        (129, 13824, 2560, Tile(128, 128, 32, num_warps=8)),
        (512, 4096, 4096, Tile(64, 256, 32)),
        (512, 6144, 4096, Tile(128, 128, 32, num_warps=8)),
        (1024, 57344, 8192, Tile(128, 128, 32, num_warps=8)),
        (4096, 4096, 4096, Tile(128, 128, 32, num_warps=8)),  # beyond 1024 tokens on >= 4096 rows
        (1024, 2560, 6912, None),  # fewer rows: dequantize + cuBLAS
        (1024, 3840, 2560, Tile(128, 128, 32, num_warps=8)),
        (2048, 3840, 2560, None),
        (8193, 57344, 8192, None),  # not swept beyond 8192 tokens
    ],
)
def test_hopper_rules(on_h100, m, n, k, tile):
    assert configs.hopper_weight_only_config(m, n, k, "ternary", CUDA, 2) == tile


def test_hopper_rules_only_where_measured(on_h100, monkeypatch):
    assert configs.hopper_weight_only_config(2048, 28672, 4096, "binary", CUDA, 2) is None  # binary: to 1024 tokens
    assert configs.hopper_weight_only_config(64, 28672, 4096, "ternary", CUDA, 4) is None  # fp32 activations
    assert configs.hopper_weight_only_config(64, 28672, 4096, "ternary", torch.device("cpu"), 2) is None
    monkeypatch.setattr(configs, "_is_sm90", lambda device: False)  # Ada, Blackwell: no wgmma / another MMA
    assert configs.hopper_weight_only_config(64, 28672, 4096, "ternary", CUDA, 2) is None
    monkeypatch.setattr(configs, "_is_sm90", lambda device: True)
    monkeypatch.setenv(configs.HOPPER_ENV, "0")
    assert configs.hopper_weight_only_config(64, 28672, 4096, "ternary", CUDA, 2) is None
    monkeypatch.delenv(configs.HOPPER_ENV)
    monkeypatch.setattr(configs, "gpu_key", lambda device: "H100")
    configs.TUNED_GEMM[("H100", "ternary", False, 64, 28672, 4096, 2)] = configs.GemmConfig(64, 64, 64)
    assert configs.hopper_weight_only_config(64, 28672, 4096, "ternary", CUDA, 2) is None  # the user tuned it


@pytest.mark.parametrize(
    ("m", "n", "k", "tile"),
    [
        (8, 28672, 4096, Tile(64, 8, 64, num_stages=3)),  # one stage fewer than ternary's tile
        (16, 8192, 28672, Tile(64, 16, 256, num_stages=2)),
        (64, 28672, 4096, Tile(128, 64, 32, num_warps=8, num_stages=2)),  # tall layers at 33-64: half the step
        (64, 4096, 4096, Tile(64, 64, 64, num_stages=2)),
        (128, 4096, 4096, Tile(64, 128, 32)),  # fewer stages would not fit: half the step
        (1024, 57344, 8192, Tile(128, 128, 32, num_warps=8, num_stages=2)),
    ],
)
def test_hopper_binary_tiles(on_h100, m, n, k, tile):
    assert configs.hopper_weight_only_config(m, n, k, "binary", CUDA, 2) == tile


def test_hopper_tile_covers_every_m():
    for m in (1, 8, 9, 16, 17, 32, 33, 64, 65, 128, 129, 256, 257, 512, 513, 4096):
        tile = configs.hopper_tile(m, 4096, 4096)
        assert tile.block_m >= min(m, 128) and tile.block_m in (8, 16, 32, 64, 128, 256)  # one token block to 128


def problem(m=40, n=64, k=256, dtype=torch.bfloat16):
    codes = torch.randint(-1, 2, (n, k), dtype=torch.int8)
    return torch.randn(m, k, dtype=dtype), bk.pack(codes, weight_bits=1.58), torch.rand(n) + 0.5


def test_supported_checks_what_tma_needs():
    x, packed, _ = problem()
    y = torch.empty(40, 64, dtype=torch.bfloat16)
    tile = Tile(64, 64, 64)
    assert hopper.supported(tile, x, packed, 256, y) == hopper.available()
    assert not hopper.supported(tile, x.float(), packed, 256, y.float())  # fp32 activations
    assert not hopper.supported(tile, x[:, :128], packed[:, :32], 128, y)  # a strided view
    assert not hopper.supported(Tile(64, 64, 128), x, packed, 256, y)  # K not whole stages of 128 bytes
    assert not hopper.supported(tile, x, packed[:60], 256, y[:, :60])  # rows not a multiple of 8


def test_linear_triton_routes_weight_only_to_hopper(monkeypatch):
    """auto sends the rules' calls to the Gluon GEMM with the rules' tile, and where TMA cannot take the tensors it
    falls back to the path it would take without it (here the interpreter's Triton GEMM)."""
    x, packed, scale = problem()
    tile = Tile(64, 64, 64)
    calls = []

    def fake_gemm(cfg, x2, packed_, w_scale, bias, y):
        calls.append(cfg)
        y.copy_(linear_reference(x2, packed_, w_scale, 256, "ternary", None, bias))

    monkeypatch.setattr(kernel, "hopper_weight_only_config", lambda *a: tile)
    monkeypatch.setattr(kernel.hopper, "available", lambda: True)
    monkeypatch.setattr(kernel.hopper, "supported", lambda *a: True)
    monkeypatch.setattr(kernel.hopper, "weight_only_sm90", fake_gemm)
    want = linear_reference(x, packed, scale, 256, "ternary", None, None)
    assert kernel.auto_path(40, 64, 256, "ternary", False, packed, 2) == "hopper"
    assert torch.equal(kernel.linear_triton(x, packed, scale, 256, "ternary", None, None), want)
    assert calls == [tile]
    assert kernel.auto_path(40, 64, 256, "ternary", True, packed, 2) != "hopper"  # A8 never
    monkeypatch.setattr(kernel.hopper, "supported", lambda *a: False)
    y = kernel.linear_triton(x, packed, scale, 256, "ternary", None, None)
    assert calls == [tile]  # not called again
    torch.testing.assert_close(y, want, rtol=1e-2, atol=1e-2)


def test_forced_hopper_path_says_what_it_needs():
    x, packed, scale = problem()
    with pytest.raises(ValueError, match="sm_90"):
        kernel.linear_triton(x, packed, scale, 256, "ternary", None, None, path="hopper")
    with pytest.raises(ValueError, match="weight-only"):
        kernel.linear_triton(x, packed, scale, 256, "ternary", 8, None, path="hopper")


# ------------------------------------------------------------------------------------------------
# the kernel through this Triton's compiler, for sm_90 (no GPU)


class CompilerApiMoved(Exception):
    pass


def compile_for_sm90(tile: Tile, dtype: torch.dtype, fmt: str = "ternary"):
    try:
        from triton.backends.compiler import GPUTarget
        from triton.experimental.gluon._runtime import GluonASTSource
        from triton.runtime.jit import mangle_type
    except ImportError as err:  # pragma: no cover - internal API moved
        raise CompilerApiMoved(str(err)) from None
    import triton

    m, n, k = tile.block_m, 4096, 4096
    per_byte = 4 if fmt == "ternary" else 8
    x, y = torch.empty(m, k, dtype=dtype), torch.empty(m, n, dtype=dtype)
    w = torch.empty(n, k // per_byte, dtype=torch.uint8)
    descs = hopper.descriptors(tile, x, w, y)
    fn = hopper._weight_only_sm90_kernel
    signature = dict(x_desc=mangle_type(descs[0]), w_desc=mangle_type(descs[1]), y_desc=mangle_type(descs[2]))
    signature.update(w_scale_ptr="*fp32", bias_ptr="*fp32", M="i32", N="i32", KP="i32", w_scale_stride="i32")
    constants = dict(
        HAS_BIAS=True, IS_BF16=dtype == torch.bfloat16, GROUP_M=8, STAGES=tile.num_stages, num_warps=tile.num_warps
    )
    signature.update({name: "constexpr" for name in constants})
    src = GluonASTSource(
        fn=fn, signature=signature, constexprs={(fn.arg_names.index(k),): v for k, v in constants.items()}
    )
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": tile.num_warps})


TILES = sorted(
    {
        (configs.hopper_tile(m, n, k, fmt), fmt)
        for m in (8, 16, 32, 64, 128, 256, 512, 1024)
        for n, k in ((4096, 4096), (28672, 4096), (57344, 8192), (8192, 28672))
        for fmt in ("ternary", "binary")
    },
    key=str,
)


def compile_every_tile(out: Path) -> None:
    """Writes i.cubin and i.shared for TILES[i] (fp16 for the 64-token tiles, bf16 for the rest)."""
    for i, (tile, fmt) in enumerate(TILES):
        compiled = compile_for_sm90(tile, torch.bfloat16 if tile.block_m != 64 else torch.float16, fmt)
        (out / f"{i}.cubin").write_bytes(compiled.asm["cubin"])
        (out / f"{i}.shared").write_text(str(compiled.metadata.shared))


@pytest.fixture(scope="module")
def cubins(tmp_path_factory):
    """The tiles compiled in a process of their own, without the interpreter: in a pytest worker where interpreted
    kernels ran before, Gluon's front end failed ("'block_argument' object has no attribute 'dtype'" in a CI run,
    once locally), which says nothing about the kernel."""
    out = tmp_path_factory.mktemp("sm90")
    env = {name: value for name, value in os.environ.items() if name != "TRITON_INTERPRET"}
    run = subprocess.run([sys.executable, __file__, str(out)], env=env, capture_output=True, text=True, timeout=600)
    if run.returncode == 3:
        pytest.skip(f"this Triton's internal compiler API is not the one this test knows: {run.stdout.strip()}")
    assert run.returncode == 0, run.stderr[-4000:]
    return out


@pytest.mark.skipif(not hopper.available(), reason="this Triton has no Gluon Hopper API")
@pytest.mark.parametrize("index", range(len(TILES)), ids=[f"{fmt}-{tile}" for tile, fmt in TILES])
def test_kernel_compiles_for_sm90_with_async_wgmmas(cubins, index):
    assert int((cubins / f"{index}.shared").read_text()) <= 227 * 1024  # an H100's shared memory a block
    cuobjdump = Path(hopper.gl.__file__).parents[3] / "backends" / "nvidia" / "bin" / "cuobjdump"
    if not cuobjdump.exists() and not shutil.which("cuobjdump"):
        pytest.skip("no cuobjdump to read the SASS")
    tool = str(cuobjdump) if cuobjdump.exists() else "cuobjdump"
    cubin = cubins / f"{index}.cubin"
    sass = subprocess.run([tool, "-sass", str(cubin)], capture_output=True, text=True, check=True).stdout
    tile, fmt = TILES[index]
    slices = 4 if fmt == "ternary" else 8
    assert sass.count("HGMMA") >= slices * max(1, tile.block_kp // 16)  # a slice's wgmma: K = BLOCK_KP, 16 an HGMMA
    # ptxas keeps the wgmmas asynchronous: one wait a slice (and one after the loop), not one after every HGMMA,
    # which it emits when it cannot prove the pipeline safe (C7515) and which costs the overlap this kernel exists for
    assert sass.count("WARPGROUP.DEPBAR") <= slices + 1
    assert operand_registers_written_in_flight(sass) == []


def operand_registers_written_in_flight(sass: str) -> list[str]:
    """Instructions of the main loop (scanned twice, so that what is in flight at the back edge meets the next
    iteration) that write a register an HGMMA reads as its A operand before the WARPGROUP.DEPBAR that retires that
    HGMMA's group: the hardware reads those registers while the wgmma runs, so such a write races with it. v20's
    kernel had this race (latent; v21's faster decode made it show as wrong outputs)."""
    ins = [(int(m.group(1), 16), m.group(2).strip()) for m in re.finditer(r"/\*([0-9a-f]{4,})\*/\s+([^;]*);", sass)]
    first_hgmma = next(i for i, (_, text) in enumerate(ins) if "HGMMA" in text)
    branch = re.compile(r"BRA (0x[0-9a-f]+)")
    back = next(
        i
        for i, (addr, text) in enumerate(ins)
        if i > first_hgmma and (hit := branch.search(text)) and int(hit.group(1), 16) < addr
    )
    target = int(branch.search(ins[back][1]).group(1), 16)
    start = next(i for i, (addr, _) in enumerate(ins) if addr >= target)
    in_flight, pending, races = [], [], []
    for addr, text in ins[start : back + 1] * 2:
        op = text.split()[1] if text.startswith("@") else text.split()[0]
        if op.startswith("HGMMA"):
            a = re.search(r"HGMMA\S* R\d+, R(\d+), gdesc", text)
            if a:
                pending.extend(range(int(a.group(1)), int(a.group(1)) + 4))
            if "gsb0" in text:  # the last of a group
                in_flight.append(set(pending))
                pending = []
        elif op.startswith("WARPGROUP.DEPBAR"):
            keep = int(re.search(r"0x([0-9a-f]+)", text).group(1), 16)
            in_flight = in_flight[len(in_flight) - keep :] if keep else []
        elif not op.startswith(("ST", "BAR", "SYNCS", "UTMA", "WARPGROUP")):
            dest = re.match(r"(?:@!?U?P\w+\s+)?\S+\s+R(\d+)", text)
            if dest and any(int(dest.group(1)) in regs for regs in in_flight):
                races.append(f"{addr:05x}: {text}")
    return races


if __name__ == "__main__":  # the cubins fixture's process
    try:
        compile_every_tile(Path(sys.argv[1]))
    except CompilerApiMoved as err:
        print(err)
        sys.exit(3)
