# v21: Nsight Compute on the Gluon weight-only GEMM (28672x4096 at 16 / 64 / 256 tokens, 8192x28672 at 64) for what
# limits it: stall reasons, L2 and DRAM throughput, tensor pipe; then the fp16 GPU test whose bar changed after v20.
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader
P=packages/bitmat-kernels/results/2026-11-27-h100-v21/prof.py
S="--section SpeedOfLight --section Occupancy --section WarpStateStats --section SchedulerStats --section LaunchStats --section MemoryWorkloadAnalysis --section InstructionStats --section ComputeWorkloadAnalysis"
run() { f=$OUT/ncu-$(echo "$@" | tr ' ' '-').txt; timeout 120 ncu --clock-control none --kernel-name regex:_weight_only_sm90 --launch-skip 2 --launch-count 1 $S --metrics sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,lts__t_sectors_srcunit_tex_op_read.sum,lts__t_bytes.sum.per_second,smsp__inst_executed.sum python3 $P "$@" > $f 2>&1; grep -E "Duration|Registers Per|Achieved Occupancy|Issued Warp|No Eligible|Stall|Memory Throughput|DRAM Throughput|L2 Cache Throughput|Theoretical Occ|Block Limit|hmma|lts__t|inst_executed" $f | head -40; }
run 28672 4096 64 64 64 64 4 3
run 28672 4096 16 64 16 128 4 3
run 28672 4096 256 128 128 32 8 3
run 8192 28672 64 64 64 64 4 4
OUT=$OUT timeout 200 bash tools/gpu_tests.sh -k hopper 2>&1 | tail -5
