# v20 cmd4 (H100): the Gluon weight-only GEMM as shipped (ops/linear/hopper.py, configs.hopper_weight_only_config):
# the GPU suite of every package (bitmat-nn and bitmat-hf run weight-only layers through it too).
OUT=$OUT timeout 400 bash tools/gpu_tests.sh -n 6 > /dev/null 2>&1
cp $OUT/gpu_tests.txt $OUT/gpu-tests.txt; tail -6 $OUT/gpu-tests.txt
