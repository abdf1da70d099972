"""A small config-driven BitNet decoder LM: per layer a mixer (BitAttention or BitMamba) and a
feed-forward (BitFFN or BitMoE), pre-norm residual blocks, RMSNorm, full-precision embeddings and
LM head (tied or untied), and cached generation."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_positive_int
from .attention import BitAttention, check_attention_mask, default_position_ids
from .cache import BitNetCache, KVCache, MambaCache
from .ffn import ACTIVATIONS, BitFFN
from .linear import BitLinear
from .mamba import BitMamba
from .moe import BitMoE
from .norm import RMSNorm

logger = logging.getLogger(__name__)

# mixer_ffn; "moe" is short for "attention_moe".
LAYER_TYPES = ("attention", "mamba", "attention_moe", "mamba_moe")
_ALIASES = {"moe": "attention_moe"}


@dataclass
class BitNetConfig:
    """Configuration of :class:`BitNetForCausalLM`.

    layer_types: one entry per layer, "attention" (attention + dense FFN), "mamba" (Mamba +
    dense FFN), "attention_moe" or "moe" (attention + MoE), "mamba_moe"; None = all "attention".
    """

    vocab_size: int = 256
    hidden_size: int = 64
    intermediate_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int | None = None
    head_dim: int | None = None
    layer_types: list[str] | None = None
    activation: str = "swiglu"
    subln: bool = False
    bias: bool = False
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    tie_word_embeddings: bool = True
    initializer_range: float = 0.02
    # BitLinear
    weight_bits: float = 1.58
    activation_bits: int | None = 8
    per_channel: bool = False
    # Mamba layers
    mamba_d_state: int = 16
    mamba_d_conv: int = 4
    mamba_expand: int = 2
    mamba_chunk_size: int = 64
    # MoE layers
    num_experts: int = 4
    num_experts_per_token: int = 2
    moe_intermediate_size: int | None = None
    router_aux_loss_coef: float = 0.01

    def __post_init__(self) -> None:
        fn = "BitNetConfig"
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads"):
            check_positive_int(fn, name, getattr(self, name))
        kv = self.num_heads if self.num_kv_heads is None else self.num_kv_heads
        check_positive_int(fn, "num_kv_heads", kv)
        if self.num_heads % kv:
            raise ValueError(f"{fn}: 'num_heads' ({self.num_heads}) must be a multiple of 'num_kv_heads' ({kv})")
        if self.head_dim is None and self.hidden_size % self.num_heads:
            raise ValueError(
                f"{fn}: 'hidden_size' ({self.hidden_size}) must be divisible by 'num_heads' ({self.num_heads})"
            )
        if self.layer_types is None:
            self.layer_types = ["attention"] * self.num_layers
        self.layer_types = [_ALIASES.get(t, t) for t in self.layer_types]
        if len(self.layer_types) != self.num_layers:
            raise ValueError(
                f"{fn}: 'layer_types' must have num_layers={self.num_layers} entries, got {len(self.layer_types)}"
            )
        for t in self.layer_types:
            if t not in LAYER_TYPES:
                raise ValueError(f"{fn}: 'layer_types' entries must be one of {(*LAYER_TYPES, 'moe')}, got {t!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"{fn}: 'activation' must be one of {ACTIVATIONS}, got {self.activation!r}")
        if self.num_experts_per_token > self.num_experts:
            raise ValueError(
                f"{fn}: 'num_experts_per_token' ({self.num_experts_per_token}) must not exceed "
                f"'num_experts' ({self.num_experts})"
            )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> BitNetConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"BitNetConfig.from_dict: unknown keys {unknown}")
        return cls(**data)

    @property
    def bitlinear_kwargs(self) -> dict:
        return dict(weight_bits=self.weight_bits, activation_bits=self.activation_bits, per_channel=self.per_channel)


@dataclass
class BitNetOutput:
    logits: torch.Tensor
    loss: torch.Tensor | None = None
    aux_loss: torch.Tensor | None = None
    cache: BitNetCache | None = None


class BitNetBlock(nn.Module):
    """Pre-norm residual block: h += mixer(norm(h)); h += ffn(norm(h))."""

    def __init__(self, config: BitNetConfig, layer_index: int) -> None:
        super().__init__()
        c = config
        self.layer_index = layer_index
        self.layer_type = c.layer_types[layer_index]
        mixer, _, ffn = self.layer_type.partition("_")
        kw = c.bitlinear_kwargs
        self.mixer_norm = RMSNorm(c.hidden_size, c.norm_eps)
        if mixer == "attention":
            self.mixer = BitAttention(
                c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim, bias=c.bias, rope_theta=c.rope_theta,
                subln=c.subln, norm_eps=c.norm_eps, **kw,
            )  # fmt: skip
        else:
            self.mixer = BitMamba(
                c.hidden_size, c.mamba_d_state, c.mamba_d_conv, c.mamba_expand, bias=c.bias,
                chunk_size=c.mamba_chunk_size, **kw,
            )  # fmt: skip
        self.ffn_norm = RMSNorm(c.hidden_size, c.norm_eps)
        if ffn == "moe":
            self.ffn = BitMoE(
                c.hidden_size, c.moe_intermediate_size or c.intermediate_size, c.num_experts, c.num_experts_per_token,
                activation=c.activation, bias=c.bias, subln=c.subln, **kw,
            )  # fmt: skip
        else:
            self.ffn = BitFFN(
                c.hidden_size, c.intermediate_size, activation=c.activation, bias=c.bias, subln=c.subln,
                norm_eps=c.norm_eps, **kw,
            )  # fmt: skip

    @property
    def cache_type(self) -> type:
        return KVCache if isinstance(self.mixer, BitAttention) else MambaCache

    def forward(self, h, *, attention_mask=None, position_ids=None, cache=None):
        x = self.mixer_norm(h)
        if isinstance(self.mixer, BitAttention):
            h = h + self.mixer(x, attention_mask=attention_mask, position_ids=position_ids, cache=cache)
        else:
            h = h + self.mixer(x, attention_mask=attention_mask, cache=cache)
        x = self.ffn_norm(h)
        if isinstance(self.ffn, BitMoE):
            t = h.shape[1]
            token_mask = None if attention_mask is None else attention_mask[:, -t:]
            out, aux = self.ffn(x, attention_mask=token_mask)
            return h + out, aux
        return h + self.ffn(x), None


class BitNetForCausalLM(nn.Module):
    """Decoder-only BitNet LM. Embeddings, norms and the LM head are full precision (DESIGN §4)."""

    def __init__(self, config: BitNetConfig) -> None:
        super().__init__()
        if not isinstance(config, BitNetConfig):
            raise TypeError(f"BitNetForCausalLM: argument 'config' must be a BitNetConfig, got {type(config).__name__}")
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(BitNetBlock(config, i) for i in range(config.num_layers))
        self.norm = RMSNorm(config.hidden_size, config.norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self._init_weights()
        if config.tie_word_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    def _init_weights(self) -> None:
        std = self.config.initializer_range
        with torch.no_grad():
            for name, module in self.named_modules():
                if isinstance(module, nn.Embedding) or (isinstance(module, nn.Linear) and not name.endswith("dt_proj")):
                    module.weight.normal_(0.0, std)
                    if getattr(module, "bias", None) is not None:
                        module.bias.zero_()

    def drop_latent_weights(self) -> None:
        """Inference-only memory: every BitLinear keeps only its packed weights."""
        for module in self.modules():
            if isinstance(module, BitLinear):
                module.drop_latent_weights()

    def forward(
        self,
        input_ids: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: BitNetCache | None = None,
        labels: torch.Tensor | None = None,
    ) -> BitNetOutput:
        """input_ids [B, T] -> logits [B, T, vocab].

        attention_mask: [B, cached + T] (or [B, T] for the new tokens only when a cache holds the
        earlier mask), 1 = token, 0 = padding. cache: a BitNetCache to continue from and extend.
        labels [B, T]: next-token targets (shifted inside; -100 is ignored); the loss adds
        router_aux_loss_coef * the MoE balancing loss.
        """
        fn = "BitNetForCausalLM.forward"
        if not isinstance(input_ids, torch.Tensor) or input_ids.dtype not in (torch.int32, torch.int64):
            got = input_ids.dtype if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
            raise TypeError(f"{fn}: argument 'input_ids' must be an int64 or int32 tensor, got {got}")
        if input_ids.dim() != 2 or input_ids.shape[1] == 0:
            raise ValueError(f"{fn}: argument 'input_ids' must have shape [batch, T>0], got {tuple(input_ids.shape)}")
        checking = not torch.compiler.is_compiling() and input_ids.numel() > 0  # a host sync: not in graphs
        if checking and (int(input_ids.min()) < 0 or int(input_ids.max()) >= self.config.vocab_size):
            raise ValueError(
                f"{fn}: argument 'input_ids' must hold token ids in [0, {self.config.vocab_size}), got values in "
                f"[{int(input_ids.min())}, {int(input_ids.max())}]"
            )
        b, t = input_ids.shape
        if cache is not None and not isinstance(cache, BitNetCache):
            raise TypeError(f"{fn}: argument 'cache' must be a BitNetCache or None, got {type(cache).__name__}")
        past = 0
        if cache is not None:
            if cache.batch_size is not None and cache.batch_size != b:
                raise ValueError(
                    f"{fn}: cache misuse: the cache holds batch size {cache.batch_size} but 'input_ids' has batch "
                    f"size {b} (start a new BitNetCache for a new batch)"
                )
            past = cache.seq_length
            if attention_mask is None and cache.attention_mask is not None:
                attention_mask = torch.ones(b, t, dtype=torch.bool, device=input_ids.device)
            if attention_mask is not None and cache.attention_mask is not None and attention_mask.shape[-1] == t:
                attention_mask = torch.cat((cache.attention_mask, attention_mask.bool()), dim=-1)
        if attention_mask is not None:
            attention_mask = check_attention_mask(fn, attention_mask, b, past + t)
        if position_ids is None:
            position_ids = default_position_ids(b, past, t, input_ids.device, attention_mask)

        h = self.embed_tokens(input_ids)
        aux_total = None
        for i, layer in enumerate(self.layers):
            layer_cache = None if cache is None else cache.layer(i, layer.cache_type)
            h, aux = layer(h, attention_mask=attention_mask, position_ids=position_ids, cache=layer_cache)
            if aux is not None:
                aux_total = aux if aux_total is None else aux_total + aux
        logits = self.lm_head(self.norm(h))

        if cache is not None:
            cache.seq_length = past + t
            cache.batch_size = b
            cache.attention_mask = attention_mask
        loss = None
        if labels is not None:
            if tuple(labels.shape) != (b, t):
                raise ValueError(f"{fn}: argument 'labels' must have shape [{b}, {t}], got {tuple(labels.shape)}")
            loss = F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels[:, 1:].reshape(-1), ignore_index=-100
            )
            if aux_total is not None:
                loss = loss + self.config.router_aux_loss_coef * aux_total
        return BitNetOutput(logits=logits, loss=loss, aux_loss=aux_total, cache=cache)

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        max_new_tokens: int,
        *,
        attention_mask: torch.Tensor | None = None,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_k: int | None = None,
        eos_token_id: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Greedy (or sampled) decoding with a cache; returns [B, T + new]. Pad prompts on the left.

        Rows that emitted eos_token_id keep emitting it. Runs in eval mode and restores the mode.
        """
        fn = "BitNetForCausalLM.generate"
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ValueError(f"{fn}: argument 'max_new_tokens' must be a non-negative int, got {max_new_tokens!r}")
        if do_sample and not temperature > 0:
            raise ValueError(f"{fn}: argument 'temperature' must be > 0 when sampling, got {temperature!r}")
        was_training = self.training
        self.eval()
        try:
            cache = BitNetCache()
            out = self(input_ids, attention_mask=attention_mask, cache=cache)
            tokens = [input_ids]
            finished = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            for step in range(max_new_tokens):
                logits = out.logits[:, -1].float()
                if do_sample:
                    logits = logits / temperature
                    if top_k is not None:
                        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
                        logits = logits.masked_fill(logits < kth, float("-inf"))
                    next_token = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)[:, 0]
                else:
                    next_token = logits.argmax(-1)
                if eos_token_id is not None:
                    next_token = torch.where(finished, torch.full_like(next_token, eos_token_id), next_token)
                    finished |= next_token == eos_token_id
                next_token = next_token.to(input_ids.dtype)
                tokens.append(next_token[:, None])
                if step + 1 == max_new_tokens or (eos_token_id is not None and bool(finished.all())):
                    break
                out = self(next_token[:, None], cache=cache)
            return torch.cat(tokens, dim=1)
        finally:
            self.train(was_training)
