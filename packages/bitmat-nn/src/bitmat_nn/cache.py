"""Caches for incremental decoding: keys/values of attention layers, conv and SSM states of Mamba
layers, and a model-level cache that holds one of them per layer plus the attention mask so far."""

from __future__ import annotations

import torch


class KVCache:
    """Keys and values [B, num_kv_heads, S, head_dim] of one attention layer, grown by `update`.

    With `max_length`, growing past it is an error (a fixed budget for generation).
    """

    def __init__(self, max_length: int | None = None) -> None:
        bad = isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1
        if max_length is not None and bad:
            raise ValueError(f"KVCache: argument 'max_length' must be a positive int or None, got {max_length!r}")
        self.max_length = max_length
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None

    @property
    def seq_length(self) -> int:
        return 0 if self.keys is None else self.keys.shape[2]

    def update(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Appends new keys/values [B, H_kv, T, D] and returns all of them so far."""
        if keys.dim() != 4 or keys.shape != values.shape:
            raise ValueError(
                f"KVCache.update: 'keys' and 'values' must both be [B, H_kv, T, D], got {tuple(keys.shape)} "
                f"and {tuple(values.shape)}"
            )
        if self.keys is not None:
            cached = self.keys.shape
            if (cached[0], cached[1], cached[3]) != (keys.shape[0], keys.shape[1], keys.shape[3]):
                raise ValueError(
                    f"KVCache.update: cache misuse: the cache holds [B, H_kv, S, D] = {tuple(cached)} but the new "
                    f"keys have shape {tuple(keys.shape)}; batch size, heads and head_dim must stay the same "
                    "(start a new cache for a new batch)"
                )
            if keys.dtype != self.keys.dtype or keys.device != self.keys.device:
                raise ValueError(
                    f"KVCache.update: cache misuse: cached {self.keys.dtype} on {self.keys.device}, new keys "
                    f"{keys.dtype} on {keys.device}"
                )
        new_length = self.seq_length + keys.shape[2]
        if self.max_length is not None and new_length > self.max_length:
            raise ValueError(
                f"KVCache.update: the cache holds at most max_length={self.max_length} positions, "
                f"{self.seq_length} cached + {keys.shape[2]} new = {new_length}"
            )
        if self.keys is None:
            self.keys, self.values = keys, values
        else:
            self.keys = torch.cat((self.keys, keys), dim=2)
            self.values = torch.cat((self.values, values), dim=2)
        return self.keys, self.values

    def reorder(self, index: torch.Tensor) -> None:
        """Keeps batch rows `index` (beam search, dropping finished rows)."""
        if self.keys is not None:
            self.keys, self.values = self.keys[index], self.values[index]


class MambaCache:
    """Conv window [B, d_inner, d_conv - 1] and SSM state [B, d_inner, d_state] of one Mamba layer."""

    def __init__(self) -> None:
        self.conv_state: torch.Tensor | None = None
        self.ssm_state: torch.Tensor | None = None
        self.seq_length = 0

    def reorder(self, index: torch.Tensor) -> None:
        if self.conv_state is not None:
            self.conv_state, self.ssm_state = self.conv_state[index], self.ssm_state[index]


class BitNetCache:
    """Per-layer caches of a :class:`~bitmat_nn.model.BitNetForCausalLM` plus the attention mask so far.

    Created empty (``BitNetCache()``) or by the model; the model fills one layer cache per layer
    on the first forward. `seq_length` is the number of positions seen.
    """

    def __init__(self, max_length: int | None = None) -> None:
        self.max_length = max_length
        self.layers: list[KVCache | MambaCache] = []
        self.attention_mask: torch.Tensor | None = None
        self.seq_length = 0
        self.batch_size: int | None = None

    def layer(self, index: int, kind: type) -> KVCache | MambaCache:
        while len(self.layers) <= index:
            self.layers.append(None)
        entry = self.layers[index]
        if entry is None:
            entry = KVCache(self.max_length) if kind is KVCache else kind()
            self.layers[index] = entry
        elif not isinstance(entry, kind):
            raise TypeError(
                f"BitNetCache: cache misuse: layer {index} holds a {type(entry).__name__} but the model's layer "
                f"needs a {kind.__name__} (was this cache made by another model?)"
            )
        return entry

    def reorder(self, index: torch.Tensor) -> None:
        for entry in self.layers:
            if entry is not None:
                entry.reorder(index)
        if self.attention_mask is not None:
            self.attention_mask = self.attention_mask[index]
        self.batch_size = int(index.numel())
