import json

import pytest
from bitmat_hf import BitMatConfig, BitMatConfigError, Gemma158Config, Llama158Config, Mistral158Config
from transformers import AutoConfig


def test_defaults_and_round_trip():
    qc = BitMatConfig()
    d = qc.to_dict()
    assert d["quant_method"] == "bitmat" and d["weight_bits"] == 1.58 and d["activation_bits"] == 8
    assert d["format_version"] == 1 and d["checkpoint_format"] == "packed"
    again = BitMatConfig.coerce(json.loads(json.dumps(d)))
    assert again.to_dict() == d


def test_unknown_keys_survive_round_trip():
    qc = BitMatConfig.coerce({"quant_method": "bitmat", "some_future_field": 3})
    assert qc.to_dict()["some_future_field"] == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"weight_bits": 4}, "weight_bits"),
        ({"weight_bits": True}, "weight_bits"),
        ({"activation_bits": 4}, "activation_bits"),
        ({"eps": 0}, "eps"),
        ({"per_channel": "yes"}, "per_channel"),
        ({"modules_to_not_convert": "lm_head"}, "modules_to_not_convert"),
        ({"checkpoint_format": "zip"}, "checkpoint_format"),
        ({"format_version": 99}, "newer BitMat"),
        ({"format_version": "x"}, "integer"),
    ],
)
def test_bad_values(kwargs, match):
    with pytest.raises(BitMatConfigError, match=match):
        BitMatConfig(**kwargs)


def test_coerce_rejects_other_methods():
    with pytest.raises(BitMatConfigError, match="quant_method"):
        BitMatConfig.coerce({"quant_method": "bitnet"})


@pytest.mark.parametrize(
    ("cls", "model_type"),
    [(Llama158Config, "llama158"), (Mistral158Config, "mistral158"), (Gemma158Config, "gemma158")],
)
def test_158_configs_registered(tmp_path, cls, model_type):
    cfg = cls(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, vocab_size=50)
    assert cfg.model_type == model_type
    cfg.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert type(loaded) is cls and loaded.hidden_size == 32


def test_quantizer_registered():
    from bitmat_hf import BitMatHfQuantizer
    from transformers.quantizers.auto import AUTO_QUANTIZATION_CONFIG_MAPPING, AUTO_QUANTIZER_MAPPING

    assert AUTO_QUANTIZATION_CONFIG_MAPPING["bitmat"] is BitMatConfig
    assert AUTO_QUANTIZER_MAPPING["bitmat"] is BitMatHfQuantizer
    assert AUTO_QUANTIZER_MAPPING["bitnet"] is not BitMatHfQuantizer  # "bitnet" is transformers' own


def test_register_is_idempotent():
    import importlib

    import bitmat_hf.quantizer

    bitmat_hf.quantizer.register()
    importlib.reload(bitmat_hf.auto).register()
