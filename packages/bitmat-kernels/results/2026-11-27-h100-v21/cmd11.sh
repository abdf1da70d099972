# v21: binary weights on the Gluon GEMM: checks, tile times against cuBLAS and the current binary path; then the
# hopper GPU tests (ternary and binary).
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
timeout 300 python3 packages/bitmat-kernels/results/2026-11-27-h100-v21/binary.py > $OUT/binary.txt 2>&1; grep -c point $OUT/binary.jsonl; grep check $OUT/binary.jsonl | head -8
OUT=$OUT timeout 150 bash tools/gpu_tests.sh -k hopper > /dev/null 2>&1; tail -2 $OUT/gpu_tests.txt
