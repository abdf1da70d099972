"""BitMoE: a mixture of BitFFN experts behind a full-precision top-k router, with the Switch
Transformer load-balancing loss. Tokens are dispatched by sorting them by expert (one gather,
one matmul per expert, one scatter-add): no Python loop over tokens."""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_input, check_positive_int
from .ffn import BitFFN


class BitMoE(nn.Module):
    """Top-k mixture of experts: y = sum_{e in top-k(x)} w_e(x) * expert_e(x).

    The router (nn.Linear, full precision, as BitNet keeps embeddings and heads) gives softmax
    probabilities over the experts; the top_k are kept and, with normalize_top_k, renormalised to
    sum to 1. forward returns (y, aux_loss) with aux_loss = num_experts * sum_e f_e * P_e, f_e the
    fraction of routed slots that went to expert e and P_e its mean router probability (1.0 when
    perfectly balanced); scale it by a coefficient in the training loss.
    """

    def __init__(
        self,
        hidden_size: int,
        intermediate_size: int,
        num_experts: int,
        top_k: int = 2,
        *,
        activation: str = "swiglu",
        normalize_top_k: bool = True,
        bias: bool = False,
        subln: bool = False,
        **bitlinear_kwargs,
    ) -> None:
        super().__init__()
        fn = "BitMoE"
        check_positive_int(fn, "hidden_size", hidden_size)
        check_positive_int(fn, "num_experts", num_experts)
        check_positive_int(fn, "top_k", top_k)
        if top_k > num_experts:
            raise ValueError(f"{fn}: argument 'top_k' ({top_k}) must not exceed 'num_experts' ({num_experts})")
        self.hidden_size, self.num_experts, self.top_k = hidden_size, num_experts, top_k
        self.normalize_top_k = normalize_top_k
        factory = {k: bitlinear_kwargs[k] for k in ("device", "dtype") if k in bitlinear_kwargs}
        self.router = nn.Linear(hidden_size, num_experts, bias=False, **factory)
        self.experts = nn.ModuleList(
            BitFFN(hidden_size, intermediate_size, activation=activation, bias=bias, subln=subln, **bitlinear_kwargs)
            for _ in range(num_experts)
        )

    def route(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Router probabilities [N, E] (float32), top-k weights [N, k] and expert indices [N, k]."""
        probs = torch.softmax(self.router(flat).float(), dim=-1)
        weights, experts = probs.topk(self.top_k, dim=-1)
        if self.normalize_top_k:
            weights = weights / weights.sum(-1, keepdim=True)
        return probs, weights, experts

    def forward(
        self, x: torch.Tensor, *, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [..., hidden_size] -> (y of x's shape, aux_loss float32 scalar).

        attention_mask (x.shape[:-1], 1 = token, 0 = padding) keeps padding out of the balancing loss.
        """
        fn = "BitMoE.forward"
        check_input(fn, "x", x, last_dim=self.hidden_size)
        flat = x.reshape(-1, self.hidden_size)
        n = flat.shape[0]
        probs, weights, experts = self.route(flat)

        # Dispatch: sort the N*k (token, expert) slots by expert; each expert sees one contiguous block.
        slot_expert = experts.reshape(-1)
        order = torch.argsort(slot_expert, stable=True)
        slot_token = torch.arange(n, device=x.device).repeat_interleave(self.top_k)[order]
        slot_weight = weights.reshape(-1)[order]
        counts = torch.bincount(slot_expert, minlength=self.num_experts)
        expert_in = flat[slot_token]
        outputs = []
        for expert, block in zip(self.experts, expert_in.split(counts.tolist())):
            outputs.append(expert(block) if block.shape[0] else block)
        expert_out = torch.cat(outputs) if outputs else expert_in
        y = torch.zeros_like(flat).index_add_(0, slot_token, expert_out * slot_weight[:, None].to(x.dtype))

        # Switch-Transformer balancing loss, over real tokens only.
        if attention_mask is not None:
            if tuple(attention_mask.shape) != tuple(x.shape[:-1]):
                raise ValueError(
                    f"{fn}: argument 'attention_mask' must have shape {tuple(x.shape[:-1])}, "
                    f"got {tuple(attention_mask.shape)}"
                )
            keep = attention_mask.reshape(-1).to(torch.float32)
        else:
            keep = probs.new_ones(n)
        real = keep.sum().clamp_min(1)
        onehot = torch.zeros_like(probs).scatter_(1, experts, 1.0)  # [N, E], k ones per token
        fraction = (onehot * keep[:, None]).sum(0) / (real * self.top_k)
        mean_prob = (probs * keep[:, None]).sum(0) / real
        aux_loss = self.num_experts * (fraction * mean_prob).sum()
        return y.reshape(x.shape), aux_loss

    def extra_repr(self) -> str:
        return f"hidden_size={self.hidden_size}, num_experts={self.num_experts}, top_k={self.top_k}"
