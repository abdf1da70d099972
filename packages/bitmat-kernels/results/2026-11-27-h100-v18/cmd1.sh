# v18 cmd1 (H100): (a) v17's next-cmd sweep: weight-only 128 x 128 x 32 tiles with the byte decode on 2-4 stages
# against the code-pair tile of the v17 rules, 128-1024 tokens, five layers; (b) how long tune_linear takes on a GPU
# (three large layers, A8 and weight-only, the default batch sizes and budget), with what it picked.
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
S=28672x4096,57344x8192,8192x28672,6144x4096,4096x4096
T=128x128x32x8x4,128x128x32x8x3,128x128x32x8x2,128x128x64x8x2
timeout 290 python3 packages/bitmat-kernels/scripts/gpu_sweep.py --out $OUT/sweep1.jsonl --shapes $S --batch 128,256,512,1024 --impls A16W158 --dequant --sweep gemm --sweep-shapes $S --sweep-batch 128,256,512,1024 --sweep-modes A16 --gemm-tiles $T --code-pairs 0,1 --split-k 1 > $OUT/sweep1.txt 2>&1
tail -1 $OUT/sweep1.txt
# (the script ran inline here; it is tuning-time.py verbatim, whose default layers are these three)
timeout 270 python3 packages/bitmat-kernels/results/2026-11-27-h100-v18/tuning-time.py > $OUT/tuning-time.txt 2>&1
grep "^==" $OUT/tuning-time.txt; tail -2 $OUT/tuning-time.txt
