"""Quantization-aware fine-tuning: a plain loop, transformers' Trainer, and LoRA through PEFT."""

import bitmat_hf
import bitmat_kernels
import pytest
import torch
from _hf_testing import input_ids, logits, make_model
from bitmat_hf import Mistral158ForCausalLM, convert_hf_model
from bitmat_nn import BitLinear


def _batch(n=4, length=16, seed=3):
    ids = input_ids(n, length, seed)
    return ids


def test_plain_loop_lowers_the_loss():
    torch.manual_seed(0)
    model = convert_hf_model(make_model("llama"), show_progress=False)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    ids = _batch()
    losses = []
    for _ in range(15):
        loss = model(ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1, losses
    # Evaluation afterwards runs the packed weights of the updated latent weights.
    model.eval()
    with torch.no_grad():
        assert model(ids, labels=ids).loss.item() < losses[0]


def test_trainer_step(tmp_path):
    from torch.utils.data import Dataset
    from transformers import Trainer, TrainingArguments

    class Blocks(Dataset):
        def __init__(self):
            self.ids = _batch(8)

        def __len__(self):
            return len(self.ids)

        def __getitem__(self, i):
            return {"input_ids": self.ids[i], "labels": self.ids[i]}

    model = convert_hf_model(make_model("mistral"), show_progress=False)
    q = model.model.layers[0].self_attn.q_proj
    before = q.weight.detach().clone()
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=args, train_dataset=Blocks())
    result = trainer.train()
    assert result.global_step == 2
    assert not torch.equal(before, q.weight.detach())  # the latent weights learned
    trainer.save_model(str(tmp_path / "saved"))
    reloaded = Mistral158ForCausalLM.from_pretrained(tmp_path / "saved")
    assert torch.equal(logits(reloaded), logits(model))


def test_trainer_from_packed_checkpoint(tmp_path, packed_folder):
    """A packed-only model: model.train() (or prepare_for_training) before the Trainer gives it latent weights."""
    path, _ = packed_folder
    model = Mistral158ForCausalLM.from_pretrained(path)
    assert bitmat_hf.prepare_for_training(model) > 0
    q = model.model.layers[0].self_attn.q_proj
    assert q.weight is not None and q.weight.requires_grad
    model.train()
    ids = _batch()
    model(ids, labels=ids).loss.backward()
    assert q.weight.grad is not None


peft = pytest.importorskip("peft")


def test_lora_trains_merges_and_saves(tmp_path):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = convert_hf_model(make_model("mistral"), show_progress=False)
    base_q = model.model.layers[0].self_attn.q_proj
    lora = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    assert isinstance(lora.base_model.model.model.layers[0].self_attn.q_proj.base_layer, BitLinear)
    opt = torch.optim.AdamW([p for p in lora.parameters() if p.requires_grad], lr=1e-2)
    ids = _batch()
    lora.train()
    for _ in range(3):
        loss = lora(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    lora.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
    lora.eval()
    with torch.no_grad():
        unmerged = lora(input_ids=ids).logits
    merged = bitmat_hf.merge_lora(lora)
    assert isinstance(merged.model.layers[0].self_attn.q_proj, BitLinear)
    assert merged.model.layers[0].self_attn.q_proj is base_q
    got = logits(merged, ids)
    # Merging requantizes (dequantize -> add -> requantize), so it is close, not equal.
    rel = (got - unmerged).norm() / unmerged.norm()
    assert rel < 0.3, rel
    merged.save_pretrained(tmp_path / "merged")
    again = Mistral158ForCausalLM.from_pretrained(tmp_path / "merged")
    assert torch.equal(logits(again, ids), got)


def test_lora_merge_into_packed_only_layers(packed_folder):
    """Merging into a packed-only BitLinear: dequantize, add B·A, requantize (never touching packed bytes)."""
    from peft import LoraConfig, get_peft_model

    path, ref = packed_folder
    model = Mistral158ForCausalLM.from_pretrained(path)
    bitmat_hf.prepare_for_training(model)  # peft needs a weight to attach to
    lora = get_peft_model(model, LoraConfig(r=2, target_modules=["o_proj"], init_lora_weights=False))
    bitmat_hf.pack_and_drop_latent(lora)  # back to packed-only base layers, adapters kept
    wrapped = lora.base_model.model.model.layers[0].self_attn.o_proj
    base = wrapped.get_base_layer()
    with torch.no_grad():
        expected_w = base.dequantized_weight(torch.float32) + wrapped.get_delta_weight("default")
    expected_codes, expected_scale = bitmat_kernels.ternarize(expected_w)
    merged = bitmat_hf.merge_lora(lora)
    layer = merged.model.layers[0].self_attn.o_proj
    assert isinstance(layer, BitLinear) and layer.weight is None  # still packed-only
    assert torch.equal(layer.packed_weight, bitmat_kernels.pack_ternary(expected_codes))
    assert torch.equal(layer.weight_scale, expected_scale)
    assert not torch.equal(logits(merged), ref)
