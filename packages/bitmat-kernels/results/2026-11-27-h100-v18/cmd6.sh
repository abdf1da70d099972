# v18: the published run at the v18 rules (ternary weight-only from 257 tokens: byte decode on 3 stages; ternary A8
# beyond 1024 tokens: 128 x 128 x 64 on 4 warps): every shape and batch of DESIGN §6, every implementation but gemlite
# (bitmat-tl from .whl), one process, packed into one tgz
export BITMAT_BENCH_GIT_COMMIT=7cde52f84416cf945d88f5229e8ef929501cd9ff
OUT=$OUT PYTHON=python3 bash packages/bitmat-bench/scripts/gpu_run.sh kernels > $OUT/run.txt 2>&1; tail -3 $OUT/run.txt; ls $OUT
