# v16 probe 9: one weight-only token as planes on the A8 GEMV (4 dp4a a decoded word), six tiles, four layers
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
timeout 300 python3 packages/bitmat-kernels/results/2026-11-27-h100-v16/planes_gemv_probe.py --out $OUT/probe9.jsonl --shapes 28672x4096,57344x8192,8192x28672,8192x8192,4096x4096,4096x14336 > $OUT/probe9.txt 2>&1
tail -1 $OUT/probe9.txt
