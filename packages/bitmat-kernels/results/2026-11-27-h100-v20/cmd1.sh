# v20 sweep 1: weight-only GEMM at 64 tokens (issue 3 wants >= 3x; v19 read 2.0x-2.75x on the large layers).
# Offline resource report (scripts/inspect_gemm.py, Triton 3.6, sm_90): the rules' 64 x 64 x 64 code-pair tile takes
# 208 registers (2 programs an SM) and each program re-reads all 64 tokens' bf16 activations from L2: 235 MB on
# 28672x4096, 5.2 TB/s at its 45 us. Wider row tiles read fewer activation bytes; with the byte decode they fit
# 2-3 programs an SM (64 x 128 x 32 on 8 warps: 79 registers, 64 x 128 x 64: 121), and code pairs under a 128-register
# cap spill 8-16 B. The byte decode was never swept at 64 tokens on tiles wider than 64 rows.
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
nvidia-smi --query-gpu=name --format=csv,noheader
S=28672x4096,57344x8192,8192x28672,4096x4096
T=64x64x64x4x3,64x64x64x4x2,64x64x32x4x3,64x128x32x8x4,64x128x32x8x3,64x128x64x8x2,64x128x64x8x3,64x128x32x4x3,64x256x32x8x3,64x256x64x8x2
timeout 260 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep1.jsonl --shapes $S --batch 64 --impls A16W158 --sweep gemm --sweep-shapes $S --sweep-batch 64 --sweep-modes A16 --gemm-tiles $T --code-pairs 0,1 --split-k 1,2 > $OUT/sweep1.txt 2>&1
tail -1 $OUT/sweep1.txt
T=64x128x32x8x4,64x128x32x8x3,64x128x64x8x2,64x64x32x4x3
timeout 100 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep1-cap.jsonl --shapes 28672x4096 --batch 64 --impls A16W158 --sweep gemm --sweep-shapes $S --sweep-batch 64 --sweep-modes A16 --gemm-tiles $T --code-pairs 1 --gemm-max-registers 128 --split-k 1 > $OUT/sweep1-cap.txt 2>&1
tail -1 $OUT/sweep1-cap.txt
T=64x256x32x8x4,64x64x64x4x3,64x128x32x8x4,64x128x32x8x3,64x128x64x8x2,64x256x32x8x3
timeout 170 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep1-binary.jsonl --shapes $S --batch 64 --impls A16W1 --sweep gemm --sweep-format binary --sweep-shapes $S --sweep-batch 64 --sweep-modes A16 --gemm-tiles $T --code-pairs 0,1 --split-k 1 > $OUT/sweep1-binary.txt 2>&1
tail -1 $OUT/sweep1-binary.txt
for f in sweep1 sweep1-cap sweep1-binary; do python3 packages/bitmat-kernels/scripts/sweep_summary.py $OUT/$f.jsonl > $OUT/$f-summary.txt 2>&1; done
