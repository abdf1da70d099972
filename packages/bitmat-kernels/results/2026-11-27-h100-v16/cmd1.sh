# v16 sweep 1: weight-only through the int8 kernels on four int8 planes a token (path planes: the A8 GEMV at one
# token, the A8 GEMM above; planes-gemm: the GEMM at one token too) against the current rules (auto) and cuBLAS in
# the same process; ternary and binary, bf16, 1-32 tokens
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
S=28672x4096,57344x8192,8192x28672,4096x4096,3840x2560,6144x4096,13824x2560,2560x6912,8192x8192
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv > $OUT/gpu.txt
timeout 570 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep1.jsonl --shapes $S --batch 1,2,4,8,16,32 --impls A16W158,A16W1 --sweep none --extra-paths planes,planes-gemm > $OUT/sweep1.txt 2>&1
tail -3 $OUT/sweep1.txt
