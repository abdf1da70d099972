# v14: Nsight Compute on the weight-only kernels of 28672x4096 (GEMM at M=4 with and without code pairs, the GEMV at
# M=1) and the A8 GEMM at M=4, for their stall reasons
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
P=packages/bitmat-kernels/results/2026-11-26-h100-v14/prof.py
S="--section SpeedOfLight --section Occupancy --section WarpStateStats --section SchedulerStats --section LaunchStats --section MemoryWorkloadAnalysis --section InstructionStats"
run() { timeout 100 ncu --clock-control none --kernel-name "regex:$1" --launch-skip 2 --launch-count 1 $S python3 $P ${@:2} > $OUT/ncu-$2-$4-$5-$7.txt 2>&1; grep -E "Duration|Registers Per|Achieved Occupancy|Issued Warp|No Eligible|Stall|Memory Throughput|DRAM Throughput|Theoretical Occ|Block Limit" $OUT/ncu-$2-$4-$5-$7.txt | head -30; }
run _bitmat_gemm_kernel 28672 4096 4 wo ternary 1
run _bitmat_gemm_kernel 28672 4096 4 wo ternary 0
run _bitmat_gemv_weight_only 28672 4096 1 wo ternary
run _bitmat_gemm_kernel 28672 4096 4 a8 ternary
