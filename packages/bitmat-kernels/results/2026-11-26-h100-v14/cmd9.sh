# v14 sweep 5: weight-only at 2-16 tokens on the middle layers (8192 <= N < 16384), code-pair tiles with and without
# the register cap; binary 33-64 tokens on the K-heavy BitNet layer; ncu on the A8 GEMM at M=4096
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
S=8192x8192,10240x8192,13824x2560
T=16x64x256x4x3,16x64x128x4x4,16x64x128x4x3,16x128x64x4x3,16x128x64x4x4,16x128x128x8x3,32x64x64x4x3
timeout 260 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep5.jsonl --shapes $S --batch 4,16 --impls A16W158 --sweep gemm --sweep-shapes $S --sweep-batch 4,16 --sweep-modes A16 --gemm-tiles $T --split-k 1,2,4 --gemm-max-registers 0,128 > $OUT/sweep5.txt 2>&1
tail -1 $OUT/sweep5.txt
S=2560x6912,4096x14336
T=64x64x128x4x1,64x64x64x4x3,64x64x64x4x2,32x64x64x4x3
timeout 100 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep6.jsonl --shapes $S --batch 64 --impls A16W1 --sweep gemm --sweep-shapes $S --sweep-batch 64 --sweep-modes A16 --sweep-format binary --code-pairs 0,1 --gemm-tiles $T --split-k 1,2,4 > $OUT/sweep6.txt 2>&1
tail -1 $OUT/sweep6.txt
P=packages/bitmat-kernels/results/2026-11-26-h100-v14/prof.py
timeout 120 ncu --clock-control none --kernel-name regex:_bitmat_gemm_kernel --launch-skip 2 --launch-count 1 --section SpeedOfLight --section Occupancy --section SchedulerStats --section WarpStateStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis python3 $P 28672 4096 4096 a8 ternary > $OUT/ncu-a8-m4096.txt 2>&1
grep -E "Duration|Registers Per|Achieved Occupancy|Issued Warp|SM Busy|Compute \(SM\)|DRAM Throughput|Block Limit" $OUT/ncu-a8-m4096.txt | head -20
