set -u
export NCCL_NVLS_ENABLE=0 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH=packages/bitmat-kernels/src:packages/bitmat-nn/src:packages/bitmat-hf/src
R=$OUT/r; mkdir -p $R
nvidia-smi topo -m > $R/topo.txt 2>&1; cat $R/topo.txt
NCCL_DEBUG=INFO torchrun --nproc-per-node 2 examples/accelerate/nccl_bandwidth.py > $R/bandwidth.log 2>&1
grep -E "all_reduce|via|Channel 00" $R/bandwidth.log | head -12
M="--data synthetic --vocab-size 32000 --hidden-size 1024 --intermediate-size 2816 --num-layers 8 --num-heads 16 --num-kv-heads 4 --seq-len 1024 --lr 1e-3 --warmup-steps 20 --steps 30 --save-every 0 --log-every 10 --no-export"
for spec in "single 16" "ddp 16" "ddp 32"; do set -- $spec
  accelerate launch --config_file examples/accelerate/$1.yaml examples/accelerate/train_qat.py $M --batch-size $2 --output-dir /tmp/w/$1-$2 > $R/$1-bs$2.log 2>&1
  cp /tmp/w/$1-$2/log.jsonl $R/$1-bs$2.jsonl
  python3 -c "import json,statistics as s;r=[json.loads(l) for l in open('$R/$1-bs$2.jsonl')][10:];print('$1 global batch $2:',round(s.median(x['tokens_per_s'] for x in r)),'tokens/s median of steps 11-30, step',round(s.median(x['step_time_s'] for x in r)*1e3,1),'ms')" | tee -a $R/summary.txt
done
tar czf $OUT/x2.tgz -C $OUT r
