"""BitAttention: multi-head / grouped-query / multi-query attention with RoPE and BitLinear
projections, causal and padding masks through scaled_dot_product_attention, a KV cache for
incremental decoding, and the optional subln (an RMSNorm before o_proj, BitNet b1.58 2B4T)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_input, check_positive_int
from .cache import KVCache
from .linear import BitLinear
from .norm import RMSNorm
from .rope import apply_rope, rope_cos_sin


def check_attention_mask(fn: str, attention_mask: object, batch: int, length: int) -> torch.Tensor:
    """A padding mask [B, S] (True/1 = a real token, False/0 = padding) covering cached + new positions."""
    if not isinstance(attention_mask, torch.Tensor):
        raise TypeError(f"{fn}: argument 'attention_mask' must be a torch.Tensor, got {type(attention_mask).__name__}")
    if attention_mask.dtype.is_floating_point or attention_mask.is_complex():
        raise TypeError(
            f"{fn}: argument 'attention_mask' must be bool or integer (1 = token, 0 = padding), "
            f"got {attention_mask.dtype}"
        )
    if tuple(attention_mask.shape) != (batch, length):
        raise ValueError(
            f"{fn}: argument 'attention_mask' must have shape [batch, cached + new positions] = [{batch}, {length}], "
            f"got {tuple(attention_mask.shape)}"
        )
    return attention_mask.bool()


def default_position_ids(batch: int, past: int, length: int, device, attention_mask: torch.Tensor | None):
    """Positions of the new tokens: counted over real tokens when a padding mask is given (left padding)."""
    if attention_mask is None:
        return torch.arange(past, past + length, device=device).expand(batch, length)
    counted = attention_mask.long().cumsum(-1) - 1
    return counted[:, -length:].clamp_min(0)


class BitAttention(nn.Module):
    """Causal self-attention with BitLinear q/k/v/o projections.

    Args:
        hidden_size: model width.
        num_heads: query heads. num_kv_heads: key/value heads (default num_heads; 1 for
            multi-query; any divisor of num_heads for grouped-query).
        head_dim: default hidden_size // num_heads.
        bias: biases on the projections. rope_theta: RoPE base. subln: RMSNorm before o_proj.
        dropout: attention dropout in training. bitlinear_kwargs: weight_bits, activation_bits,
            per_channel, eps, device, dtype for every projection.
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        num_kv_heads: int | None = None,
        head_dim: int | None = None,
        *,
        bias: bool = False,
        rope_theta: float = 10000.0,
        subln: bool = False,
        dropout: float = 0.0,
        norm_eps: float = 1e-6,
        **bitlinear_kwargs,
    ) -> None:
        super().__init__()
        fn = "BitAttention"
        check_positive_int(fn, "hidden_size", hidden_size)
        check_positive_int(fn, "num_heads", num_heads)
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        check_positive_int(fn, "num_kv_heads", num_kv_heads)
        if num_heads % num_kv_heads:
            raise ValueError(
                f"{fn}: argument 'num_heads' ({num_heads}) must be a multiple of 'num_kv_heads' ({num_kv_heads})"
            )
        if head_dim is None:
            if hidden_size % num_heads:
                raise ValueError(
                    f"{fn}: argument 'hidden_size' ({hidden_size}) must be divisible by 'num_heads' ({num_heads}) "
                    "when head_dim is not given"
                )
            head_dim = hidden_size // num_heads
        check_positive_int(fn, "head_dim", head_dim)
        if head_dim % 2:
            raise ValueError(f"{fn}: argument 'head_dim' must be even for RoPE, got {head_dim}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{fn}: argument 'dropout' must be in [0, 1), got {dropout!r}")
        self.hidden_size, self.num_heads, self.num_kv_heads = hidden_size, num_heads, num_kv_heads
        self.head_dim = head_dim
        self.rope_theta, self.dropout = float(rope_theta), float(dropout)
        kw = dict(bitlinear_kwargs)
        self.q_proj = BitLinear(hidden_size, num_heads * head_dim, bias, **kw)
        self.k_proj = BitLinear(hidden_size, num_kv_heads * head_dim, bias, **kw)
        self.v_proj = BitLinear(hidden_size, num_kv_heads * head_dim, bias, **kw)
        self.o_proj = BitLinear(num_heads * head_dim, hidden_size, bias, **kw)
        factory = {k: kw[k] for k in ("device", "dtype") if k in kw}
        self.sub_norm = RMSNorm(num_heads * head_dim, eps=norm_eps, **factory) if subln else None

    def forward(
        self,
        x: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """x [B, T, hidden_size] -> [B, T, hidden_size].

        attention_mask: [B, cached + T] padding mask (1 = token, 0 = padding), or None.
        position_ids: [B, T] or [T] RoPE positions (default: continue after the cache, counting
        only real tokens when a mask is given). cache: a KVCache that this call appends to.
        """
        fn = "BitAttention.forward"
        check_input(fn, "x", x, last_dim=self.hidden_size, ndim=3)
        if cache is not None and not isinstance(cache, KVCache):
            raise TypeError(f"{fn}: argument 'cache' must be a KVCache or None, got {type(cache).__name__}")
        b, t, _ = x.shape
        past = cache.seq_length if cache is not None else 0
        if attention_mask is not None:
            attention_mask = check_attention_mask(fn, attention_mask, b, past + t)
        if position_ids is None:
            position_ids = default_position_ids(b, past, t, x.device, attention_mask)
        elif position_ids.shape not in ((b, t), (t,)) or position_ids.dtype.is_floating_point:
            raise ValueError(
                f"{fn}: argument 'position_ids' must be an integer tensor of shape [{b}, {t}] or [{t}], "
                f"got {position_ids.dtype} {tuple(position_ids.shape)}"
            )
        position_ids = position_ids.expand(b, t)

        q = self.q_proj(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.num_kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = rope_cos_sin(position_ids, self.head_dim, self.rope_theta, q.dtype)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v)
        s = k.shape[2]

        mask, is_causal = None, False
        if attention_mask is None and past == 0:
            is_causal = t > 1  # the fast path: a plain causal mask
        elif attention_mask is not None or t > 1:
            q_pos = torch.arange(past, past + t, device=x.device)[:, None]
            k_pos = torch.arange(s, device=x.device)[None, :]
            mask = (k_pos <= q_pos)[None, None]  # [1, 1, T, S]
            if attention_mask is not None:
                # A query on a padding position would see no key at all (NaN softmax): let it see itself.
                mask = (mask & attention_mask[:, None, None, :]) | (k_pos == q_pos)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=is_causal, dropout_p=self.dropout if self.training else 0.0,
            enable_gqa=self.num_heads != self.num_kv_heads,
        )  # fmt: skip
        out = out.transpose(1, 2).reshape(b, t, self.num_heads * self.head_dim)
        if self.sub_norm is not None:
            out = self.sub_norm(out)
        return self.o_proj(out)

    def extra_repr(self) -> str:
        return (
            f"hidden_size={self.hidden_size}, num_heads={self.num_heads}, num_kv_heads={self.num_kv_heads}, "
            f"head_dim={self.head_dim}, rope_theta={self.rope_theta}"
        )
