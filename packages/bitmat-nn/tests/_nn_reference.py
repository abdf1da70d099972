"""Independent float64 references for the tests (written from DESIGN §4, not from the code under test)."""

from __future__ import annotations

import torch


def ref_ternary(w: torch.Tensor, per_channel: bool = False, eps: float = 1e-5) -> torch.Tensor:
    """codes * gamma with gamma = mean|W|, codes = clamp(round(W / (gamma + eps)), -1, 1)."""
    w = w.double()
    gamma = w.abs().mean(-1, keepdim=True) if per_channel else w.abs().mean()
    return (w / (gamma + eps)).round().clamp(-1, 1) * gamma


def ref_binary(w: torch.Tensor, per_channel: bool = False) -> torch.Tensor:
    """sign(W - mean W) (0 -> -1) * mean|W|."""
    w = w.double()
    if per_channel:
        alpha, beta = w.mean(-1, keepdim=True), w.abs().mean(-1, keepdim=True)
    else:
        alpha, beta = w.mean(), w.abs().mean()
    return torch.where(w - alpha > 0, 1.0, -1.0).double() * beta


def ref_weight(w: torch.Tensor, weight_bits: float, per_channel: bool = False, eps: float = 1e-5) -> torch.Tensor:
    return ref_ternary(w, per_channel, eps) if weight_bits == 1.58 else ref_binary(w, per_channel)


def ref_activations(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Per-token absmax int8, dequantized: round(x * s).clamp(-128, 127) / s, s = 127 / max(absmax, eps)."""
    x = x.double()
    s = 127.0 / x.abs().amax(-1, keepdim=True).clamp_min(eps)
    return (x * s).round().clamp(-128, 127) / s


def ref_bitlinear(x, w, bias, *, weight_bits=1.58, activation_bits=8, per_channel=False, eps=1e-5):
    xq = ref_activations(x, eps) if activation_bits == 8 else x.double()
    y = xq @ ref_weight(w, weight_bits, per_channel, eps).T
    return y if bias is None else y + bias.double()


def ref_causal_attention(q, k, v, mask=None):
    """Plain softmax attention in float64: q [B,H,T,D], k/v [B,H,S,D], mask bool [B,1|H,T,S] (True = attend)."""
    q, k, v = q.double(), k.double(), v.double()
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, -1) @ v


def ref_rope(x: torch.Tensor, positions: torch.Tensor, theta: float = 10000.0) -> torch.Tensor:
    """Rotates the pair (x_j, x_{j + D/2}) by the angle position * theta^(-2j/D), in float64."""
    x = x.double()
    d = x.shape[-1]
    j = torch.arange(d // 2, dtype=torch.float64)
    angle = positions.double()[:, None, :, None] * theta ** (-2 * j / d)  # [B, 1, T, D/2]
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat((x1 * angle.cos() - x2 * angle.sin(), x2 * angle.cos() + x1 * angle.sin()), dim=-1)


def ref_rmsnorm(x: torch.Tensor, weight: torch.Tensor | None, eps: float = 1e-6) -> torch.Tensor:
    x = x.double()
    y = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return y if weight is None else y * weight.double()


def ref_linear_of(layer, x):
    """A BitLinear module's output from the float64 reference and its latent weights."""
    bias = None if layer.bias is None else layer.bias.detach()
    return ref_bitlinear(
        x, layer.weight.detach(), bias, weight_bits=layer.weight_bits, activation_bits=layer.activation_bits,
        per_channel=layer.per_channel, eps=layer.eps,
    )  # fmt: skip


def ref_bit_attention(attn, x, padding_mask=None):
    """BitAttention from first principles: projections, RoPE, explicit masked softmax, o_proj."""
    b, t, _ = x.shape
    h, hk, d = attn.num_heads, attn.num_kv_heads, attn.head_dim
    q = ref_linear_of(attn.q_proj, x).view(b, t, h, d).transpose(1, 2)
    k = ref_linear_of(attn.k_proj, x).view(b, t, hk, d).transpose(1, 2)
    v = ref_linear_of(attn.v_proj, x).view(b, t, hk, d).transpose(1, 2)
    if padding_mask is None:
        pos = torch.arange(t).expand(b, t)
    else:
        pos = (padding_mask.long().cumsum(-1) - 1).clamp_min(0)
    q, k = ref_rope(q, pos, attn.rope_theta), ref_rope(k, pos, attn.rope_theta)
    k, v = k.repeat_interleave(h // hk, dim=1), v.repeat_interleave(h // hk, dim=1)
    mask = torch.ones(t, t, dtype=torch.bool).tril()[None, None]
    if padding_mask is not None:
        mask = (mask & padding_mask.bool()[:, None, None, :]) | torch.eye(t, dtype=torch.bool)
    out = ref_causal_attention(q, k, v, mask).transpose(1, 2).reshape(b, t, h * d)
    if attn.sub_norm is not None:
        out = ref_rmsnorm(out, attn.sub_norm.weight.detach(), attn.sub_norm.eps)
    return ref_linear_of(attn.o_proj, out)


def ref_bit_ffn(ffn, x):
    gate = ref_linear_of(ffn.gate_proj, x)
    gate = gate * torch.sigmoid(gate) if ffn.activation == "swiglu" else gate.clamp_min(0).square()
    h = gate * ref_linear_of(ffn.up_proj, x)
    if ffn.sub_norm is not None:
        h = ref_rmsnorm(h, ffn.sub_norm.weight.detach(), ffn.sub_norm.eps)
    return ref_linear_of(ffn.down_proj, h)


def ref_scan_recurrence(u, delta, A, B, C, D=None, z=None, h0=None):
    """The selective-scan recurrence one step at a time in float64."""
    u, delta, A, B, C = u.double(), delta.double(), A.double(), B.double(), C.double()
    b, t, d = u.shape
    h = torch.zeros(b, d, A.shape[-1], dtype=torch.float64) if h0 is None else h0.double().clone()
    ys = []
    for i in range(t):
        h = torch.exp(delta[:, i, :, None] * A) * h + delta[:, i, :, None] * B[:, i, None, :] * u[:, i, :, None]
        y = (h * C[:, i, None, :]).sum(-1)
        if D is not None:
            y = y + u[:, i] * D.double()
        if z is not None:
            zi = z[:, i].double()
            y = y * zi * torch.sigmoid(zi)
        ys.append(y)
    return torch.stack(ys, 1), h


def ref_bit_mamba(m, x):
    """BitMamba from first principles in float64 (no padding, empty initial state)."""
    x = x.double()
    b, t, _ = x.shape
    xz = ref_linear_of(m.in_proj, x)
    x_in, z = xz[..., : m.d_inner], xz[..., m.d_inner :]
    w = m.conv1d.weight.detach().double()[:, 0]  # [d_inner, d_conv]
    k = m.d_conv
    padded = torch.cat((torch.zeros(b, k - 1, m.d_inner, dtype=torch.float64), x_in), 1)
    conv = torch.stack([(padded[:, i : i + k] * w.T).sum(1) for i in range(t)], 1)
    if m.conv1d.bias is not None:
        conv = conv + m.conv1d.bias.detach().double()
    u = conv * torch.sigmoid(conv)
    proj = ref_linear_of(m.x_proj, u) if hasattr(m.x_proj, "weight_bits") else u @ m.x_proj.weight.detach().double().T
    dt, B, C = proj.split((m.dt_rank, m.d_state, m.d_state), dim=-1)
    if hasattr(m.dt_proj, "weight_bits"):
        dt = ref_linear_of(m.dt_proj, dt)
    else:
        dt = dt @ m.dt_proj.weight.detach().double().T + m.dt_proj.bias.detach().double()
    delta = torch.nn.functional.softplus(dt)
    A = -torch.exp(m.A_log.detach().double())
    y, _ = ref_scan_recurrence(u, delta, A, B, C, m.D.detach(), z)
    return ref_linear_of(m.out_proj, y)
