"""BitMamba: a Mamba (S6) selective state-space block with BitLinear in_proj / out_proj.

The projections that carry most of the weights (in_proj, out_proj) are BitLinear; x_proj and
dt_proj are BitLinear on request; the depthwise conv1d, A, D and the dt bias stay full precision
because the recurrence is sensitive to them and they are tiny.

The scan h_t = exp(dt_t A) * h_{t-1} + dt_t B_t x_t, y_t = C_t . h_t + D x_t runs in float32 as
a chunked parallel (Hillis-Steele) scan: log2(chunk) elementwise passes per chunk, the state
carried between chunks, so memory stays O(B * chunk * d_inner * d_state).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_input, check_positive_int
from .attention import check_attention_mask
from .cache import MambaCache
from .linear import BitLinear


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    *,
    initial_state: torch.Tensor | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Selective scan over time, pure torch, differentiable.

    u, delta, z: [batch, T, d_inner]; A: [d_inner, d_state]; B, C: [batch, T, d_state];
    D: [d_inner]; initial_state: [batch, d_inner, d_state]. Returns (y [batch, T, d_inner] in
    float32, final state [batch, d_inner, d_state] float32). delta is used as given (apply
    softplus before). y = (C . h + D u) * silu(z).
    """
    check_positive_int("selective_scan", "chunk_size", chunk_size)
    batch, length, d_inner = u.shape
    d_state = A.shape[-1]
    u, delta, A, B, C = u.float(), delta.float(), A.float(), B.float(), C.float()
    h = (
        u.new_zeros(batch, d_inner, d_state)
        if initial_state is None
        else initial_state.float().expand(batch, d_inner, d_state)
    )
    ys = []
    for start in range(0, length, chunk_size):
        stop = min(start + chunk_size, length)
        dt = delta[:, start:stop, :, None]  # [b, L, d, 1]
        decay = torch.exp(dt * A)  # a_t
        inject = dt * B[:, start:stop, None, :] * u[:, start:stop, :, None]  # b_t
        # Inclusive scan of h_t = a_t h_{t-1} + b_t (from h = 0): after the loop `inject` holds the
        # chunk-local states and `decay` the running products of a, which carry the incoming state.
        offset = 1
        while offset < stop - start:
            inject = torch.cat((inject[:, :offset], decay[:, offset:] * inject[:, :-offset] + inject[:, offset:]), 1)
            decay = torch.cat((decay[:, :offset], decay[:, offset:] * decay[:, :-offset]), 1)
            offset *= 2
        states = inject + decay * h[:, None]
        ys.append(torch.einsum("bldn,bln->bld", states, C[:, start:stop]))
        h = states[:, -1]
    y = torch.cat(ys, 1) if ys else u.new_zeros(batch, 0, d_inner)
    if D is not None:
        y = y + u * D.float()
    if z is not None:
        y = y * F.silu(z.float())
    return y, h


def selective_state_update(
    state: torch.Tensor,
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One recurrent step: u, delta, z [batch, d_inner]; B, C [batch, d_state]; state
    [batch, d_inner, d_state]. Returns (y [batch, d_inner] float32, new state)."""
    dt = delta.float()[..., None]
    state = torch.exp(dt * A.float()) * state.float() + dt * B.float()[:, None, :] * u.float()[..., None]
    y = torch.einsum("bdn,bn->bd", state, C.float())
    if D is not None:
        y = y + u.float() * D.float()
    if z is not None:
        y = y * F.silu(z.float())
    return y, state


class BitMamba(nn.Module):
    """Mamba block: in_proj -> causal depthwise conv1d + SiLU -> selective scan (gated by SiLU(z)) -> out_proj.

    Args:
        d_model: model width. d_state: SSM state size. d_conv: conv kernel width. expand: d_inner / d_model.
        dt_rank: rank of the dt projection ("auto" = ceil(d_model / 16)).
        bit_x_proj, bit_dt_proj: make x_proj / dt_proj BitLinear too (default full precision).
        chunk_size: time steps per chunk of the parallel scan.
        bitlinear_kwargs: weight_bits, activation_bits, per_channel, eps, device, dtype.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | str = "auto",
        *,
        dt_min: float = 1e-3,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = True,
        bias: bool = False,
        bit_x_proj: bool = False,
        bit_dt_proj: bool = False,
        chunk_size: int = 64,
        **bitlinear_kwargs,
    ) -> None:
        super().__init__()
        fn = "BitMamba"
        for name, value in (("d_model", d_model), ("d_state", d_state), ("d_conv", d_conv), ("expand", expand)):
            check_positive_int(fn, name, value)
        check_positive_int(fn, "chunk_size", chunk_size)
        if dt_rank == "auto":
            dt_rank = math.ceil(d_model / 16)
        check_positive_int(fn, "dt_rank", dt_rank)
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"{fn}: need 0 < dt_min <= dt_max, got dt_min={dt_min!r}, dt_max={dt_max!r}")
        self.d_model, self.d_state, self.d_conv, self.expand = d_model, d_state, d_conv, expand
        self.d_inner, self.dt_rank, self.chunk_size = expand * d_model, dt_rank, chunk_size
        kw = dict(bitlinear_kwargs)
        factory = {k: kw[k] for k in ("device", "dtype") if k in kw}
        d_inner = self.d_inner

        self.in_proj = BitLinear(d_model, 2 * d_inner, bias, **kw)
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, bias=conv_bias, **factory)
        self.x_proj = (
            BitLinear(d_inner, dt_rank + 2 * d_state, False, **kw)
            if bit_x_proj
            else nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False, **factory)
        )
        self.dt_proj = (
            BitLinear(dt_rank, d_inner, True, **kw) if bit_dt_proj else nn.Linear(dt_rank, d_inner, **factory)
        )
        self.out_proj = BitLinear(d_inner, d_model, bias, **kw)

        # Mamba's initialisation: dt log-uniform in [dt_min, dt_max] through an inverse-softplus bias,
        # A = -(1..d_state) per channel (S4D-real), D = 1.
        with torch.no_grad():
            if not self.dt_proj.weight.is_meta:
                nn.init.uniform_(self.dt_proj.weight, -(dt_rank**-0.5), dt_rank**-0.5)
                dt = torch.exp(
                    torch.rand(d_inner, device=self.dt_proj.bias.device) * (math.log(dt_max) - math.log(dt_min))
                    + math.log(dt_min)
                ).clamp_min(dt_init_floor)
                self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        a = torch.arange(1, d_state + 1, dtype=torch.float32, device=factory.get("device")).repeat(d_inner, 1)
        self.A_log = nn.Parameter(torch.log(a).to(factory.get("dtype") or torch.float32))
        self.D = nn.Parameter(torch.ones(d_inner, **factory))

    def forward(
        self,
        x: torch.Tensor,
        *,
        attention_mask: torch.Tensor | None = None,
        cache: MambaCache | None = None,
    ) -> torch.Tensor:
        """x [B, T, d_model] -> [B, T, d_model].

        attention_mask: [B, cached + T] padding mask (1 = token, 0 = padding; left padding): padded
        positions leave the state untouched. cache: a MambaCache this call continues from and updates.
        """
        fn = "BitMamba.forward"
        check_input(fn, "x", x, last_dim=self.d_model, ndim=3)
        if cache is not None and not isinstance(cache, MambaCache):
            raise TypeError(f"{fn}: argument 'cache' must be a MambaCache or None, got {type(cache).__name__}")
        b, t, _ = x.shape
        past = cache.seq_length if cache is not None else 0
        keep = None
        if attention_mask is not None:
            keep = check_attention_mask(fn, attention_mask, b, past + t)[:, -t:, None]
        conv_state = ssm_state = None
        if cache is not None and cache.conv_state is not None:
            if cache.conv_state.shape[0] != b:
                raise ValueError(
                    f"{fn}: cache misuse: the cache holds batch size {cache.conv_state.shape[0]} but 'x' has "
                    f"batch size {b} (start a new cache for a new batch)"
                )
            conv_state, ssm_state = cache.conv_state, cache.ssm_state

        x_in, z = self.in_proj(x).chunk(2, dim=-1)
        if keep is not None:
            x_in = x_in * keep  # padding feeds zeros into the conv window
        # Causal depthwise conv, continuing from the cached window.
        if conv_state is None:
            conv_state = x_in.new_zeros(b, self.d_inner, self.d_conv - 1)
        window = torch.cat((conv_state.to(x_in.dtype), x_in.transpose(1, 2)), dim=-1)
        conv = F.conv1d(window, self.conv1d.weight.to(x_in.dtype), self._conv_bias(x_in.dtype), groups=self.d_inner)
        u = F.silu(conv).transpose(1, 2)  # [B, T, d_inner]

        dt, B, C = self.x_proj(u).split((self.dt_rank, self.d_state, self.d_state), dim=-1)
        delta = F.softplus(self.dt_proj(dt).float())
        if keep is not None:
            delta = delta * keep  # dt = 0: the state neither decays nor takes input at padding
        A = -torch.exp(self.A_log.float())
        if t == 1 and ssm_state is not None:
            y, state = selective_state_update(ssm_state, u[:, 0], delta[:, 0], A, B[:, 0], C[:, 0], self.D, z[:, 0])
            y = y[:, None]
        else:
            y, state = selective_scan(u, delta, A, B, C, self.D, z, initial_state=ssm_state, chunk_size=self.chunk_size)
        if cache is not None:
            cache.conv_state = window[..., window.shape[-1] - (self.d_conv - 1) :].detach()
            cache.ssm_state = state.detach()
            cache.seq_length = past + t
        return self.out_proj(y.to(x.dtype))

    def _conv_bias(self, dtype):
        return None if self.conv1d.bias is None else self.conv1d.bias.to(dtype)

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, d_state={self.d_state}, d_conv={self.d_conv}, d_inner={self.d_inner}, "
            f"dt_rank={self.dt_rank}"
        )
