"""All-reduce bandwidth between the GPUs of one host, to tell whether DDP / FSDP steps are bound by the link.

    torchrun --nproc-per-node 2 examples/accelerate/nccl_bandwidth.py [--mib 64 256 624]

Without CUDA it measures gloo between CPU processes (what the CPU tests run).

Prints, per message size, the time of one all-reduce (median of 10 after 3 warm-ups) and the bus bandwidth as
nccl-tests defines it (2 (n - 1) / n x bytes / time). 624 MiB is the fp32 gradient of train_qat.py's 156M-parameter
model: its time is what one un-overlapped DDP step spends reducing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.distributed as dist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, nargs="+", default=[16, 64, 256, 624])
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for mib in args.mib:
        x = torch.ones(max(int(mib * 2**20) // 4, 1), dtype=torch.float32, device=device)
        times = []
        for i in range(13):
            x.fill_(1.0)  # every all-reduce of ones must give exactly `world`
            sync()
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(x)
            sync()
            if i >= 3:
                times.append(time.perf_counter() - t0)
        if not bool((x == world).all()):
            raise RuntimeError(f"all_reduce of ones over {world} ranks returned {x.unique()[:4].tolist()}")
        t = statistics.median(times)
        bus = 2 * (world - 1) / world * x.numel() * 4 / t / 1e9
        if rank == 0:
            where = f"{world} {'GPUs' if cuda else 'processes'}"
            print(f"all_reduce {mib:7.1f} MiB fp32 x {where}: {t * 1e3:8.2f} ms, bus bandwidth {bus:7.1f} GB/s")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
