# v14: the last rules (binary tall layers keep bytes at 2-16 tokens; K-heavy binary 33-64 tokens split within two
# waves), and 28672x4096 A8 at M <= 16 (10% slower in the a261236 bench than in v13, kernels unchanged) in two processes
export PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":")
export BITMAT_BENCH_GIT_COMMIT=0a5585d2dd8287e884c6d4e5bc6ca37ae4dab2de
for i in 1 2; do
timeout 150 python3 -m bitmat_bench kernels --out $OUT/t-$i --no-progress --shapes 28672x4096,57344x8192,4096x14336 --batch 1,4,16,64 --impls cublas-bf16,bitmat-w158a8,bitmat-w158a16,bitmat-w1a16 > $OUT/t-$i.txt 2>&1; tail -1 $OUT/t-$i.txt
done
