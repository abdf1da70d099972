"""FSDP2 (torch.distributed.fsdp.fully_shard) with BitLinear on CPU: two gloo processes, latent weights sharded as
DTensors, losses equal to an unsharded run on the same global batch, full state dict gathered and exported packed
with bitmat_hf.distributed. (accelerate enables FSDP on GPUs only, so this drives torch's FSDP2 directly, as
accelerate's fsdp2 path does.) Also: device-map planning across two devices sees packed sizes."""

import os
import socket
import sys

import pytest
import torch
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _hf_testing import VOCAB, make_model

STEPS, BATCH, LENGTH = 3, 4, 16


def _model():
    import bitmat_hf

    model = bitmat_hf.convert_hf_model(make_model("mistral"), show_progress=False).train()
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def _batch(step: int) -> torch.Tensor:
    return torch.randint(3, VOCAB, (BATCH, LENGTH), generator=torch.Generator().manual_seed(100 + step))


def _train(model, batches, reduce=None):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for ids in batches:
        loss = model(ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        value = loss.detach().clone()
        if reduce is not None:
            reduce(value)
        losses.append(value.item())
    return losses


def _worker(rank: int, world: int, port: int, folder: str, queue) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        from bitmat_hf.distributed import export_packed, packed_cache_built
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
        from torch.distributed.fsdp import fully_shard
        from torch.distributed.tensor import DTensor

        model = _model()
        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(model)
        w = model.model.layers[0].mlp.up_proj.weight
        sharded = isinstance(w, DTensor) and w.to_local().shape[0] == w.shape[0] // world

        def mean(t):
            dist.all_reduce(t)
            t /= world

        per = BATCH // world
        batches = [_batch(0)[rank * per : (rank + 1) * per]] * STEPS  # one batch, memorized
        losses = _train(model, batches, reduce=mean)
        cache = packed_cache_built(model)
        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        result = None
        if rank == 0:
            plain = export_packed(model, folder, state_dict=full)
            with torch.no_grad():
                logits = plain(_batch(99)).logits
            torch.save(logits, folder + ".logits.pt")  # tensors through a Queue outlive their sender badly
            result = {"losses": losses, "sharded": sharded, "cache": cache, "keys": len(full)}
        dist.barrier()
        if rank == 0:
            queue.put(result)
    finally:
        dist.destroy_process_group()


def test_fsdp2_sharded_qat_matches_unsharded_and_exports(tmp_path):
    from bitmat_hf import Mistral158ForCausalLM

    reference = _train(_model(), [_batch(0)] * STEPS)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    folder = str(tmp_path / "packed")
    procs = [ctx.Process(target=_worker, args=(r, 2, port, folder, queue)) for r in range(2)]
    for p in procs:
        p.start()
    try:
        result = queue.get(timeout=120)
    finally:
        for p in procs:
            p.join(timeout=60)
    assert all(p.exitcode == 0 for p in procs)
    assert result["sharded"], "latent weights are not sharded across the two processes"
    assert result["cache"] == []
    assert result["losses"][-1] < result["losses"][0]
    assert result["losses"] == pytest.approx(reference, abs=1e-4)
    reloaded = Mistral158ForCausalLM.from_pretrained(folder).eval()
    assert reloaded.model.layers[0].mlp.up_proj.weight is None
    with torch.no_grad():
        assert torch.equal(reloaded(_batch(99)).logits, torch.load(folder + ".logits.pt"))


def test_device_map_over_two_devices_plans_packed_sizes(packed_folder, monkeypatch):
    """Two "GPUs" that each fit about half the model at packed size: the planner puts one decoder layer on each.
    (No GPU here: the planner's check of which GPUs exist is bypassed; sizes and placement are the real code.)"""
    import transformers.integrations.accelerate as hf_accelerate
    from accelerate import init_empty_weights
    from bitmat_hf import BitMatConfig, BitMatHfQuantizer, Mistral158Config, Mistral158ForCausalLM

    path, _ = packed_folder
    config = Mistral158Config.from_pretrained(path)
    with init_empty_weights():
        model = Mistral158ForCausalLM(config)
    quantizer = BitMatHfQuantizer(BitMatConfig.coerce(config.quantization_config), pre_quantized=True)
    quantizer.preprocess_model(model)
    sizes, _ = hf_accelerate.compute_module_sizes(model, quantizer)
    layer, embed = sizes["model.layers.0"], sizes["model.embed_tokens"]
    tail = sizes["lm_head"] + sizes["model.norm"]
    float_layer = layer + sum(
        m.in_features * m.out_features * 4 - m.packed_weight.numel()
        for n, m in model.named_modules()
        if n.startswith("model.layers.0.") and hasattr(m, "packed_weight")
    )
    # Device 0 also keeps room for the largest module the planner could offload (the embeddings / LM head).
    reserve = max(embed, tail, layer)
    budget = {0: embed + reserve + layer + layer // 2, 1: layer + tail + layer // 2, "cpu": 10**9}
    assert float_layer > layer + layer // 2  # at float size a layer would not fit in that slack
    monkeypatch.setattr(hf_accelerate, "get_max_memory", lambda max_memory=None: dict(max_memory))
    device_map = hf_accelerate.infer_auto_device_map(
        model, max_memory=budget, no_split_module_classes=model._no_split_modules, hf_quantizer=quantizer
    )
    assert device_map["model.embed_tokens"] == 0 and device_map["model.layers.0"] == 0, device_map
    assert device_map["model.layers.1"] == 1 and device_map["lm_head"] == 1, device_map
