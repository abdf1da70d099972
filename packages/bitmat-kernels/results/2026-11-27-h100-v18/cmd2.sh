# v18 cmd2 (H100): the GPU tests of tuning and of inductor / graph capture (kernels and nn), first on a GPU.
OUT=$OUT PYTHON=python3 timeout 400 bash tools/gpu_tests.sh -n 6 -k "tune or inductor or graph" > /dev/null 2>&1; tail -5 $OUT/gpu_tests.txt
