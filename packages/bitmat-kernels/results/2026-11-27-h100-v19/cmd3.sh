# v19 cmd3 (H100): the chunked A8 rule (kernel.a8_chunks: 8192x28672-like layers at 2048-4096 tokens, 512-token
# chunks) as a bench A/B/A around the published run: 8192x28672 at 1024-8192 tokens with chunking off
# (a8_chunks -> 1 in that process), the full bench at the rules (gpu_run.sh kernels), 8192x28672 off again.
# BITMAT_BENCH_GIT_COMMIT: the literal commit (the device copy's .git is stale).
export BITMAT_BENCH_GIT_COMMIT=${BITMAT_BENCH_GIT_COMMIT:?set it to the literal commit}
off() {
  PYTHONPATH=$(ls -d packages/*/src|tr "\n" ":") timeout 80 python3 -c "
import runpy, sys
import bitmat_kernels.ops.linear.kernel as k
k.a8_chunks = lambda *a: 1
sys.argv = ['bitmat-bench', 'kernels', '--out', '/tmp/off-$1', '--no-progress', '--shapes', '8192x28672',
            '--batch', '1024,2048,4096,8192', '--impls', 'cublas-bf16,bitmat-w158a8', '--max-seconds', '60']
runpy.run_module('bitmat_bench', run_name='__main__')" > /tmp/off-$1.log 2>&1
  tail -1 /tmp/off-$1.log; cp /tmp/off-$1/results.json $OUT/chunks-off-$1.json
}
off before
OUT=$OUT PYTHON=python3 KERNELS_MAX_SECONDS=400 bash packages/bitmat-bench/scripts/gpu_run.sh kernels > $OUT/run.txt 2>&1; tail -3 $OUT/run.txt
off after
ls $OUT
