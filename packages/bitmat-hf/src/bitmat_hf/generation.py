"""Fast generation for BitMat models: a static KV cache and CUDA graphs, so that kernel launches and Python
do not eat the packed kernels' gain at decode time.

Two ways in:

* `prepare_for_fast_generation(model)` readies any transformers causal LM (a 158 class, a model converted in
  place, or a plain bf16 one as a baseline) for `model.generate(...)` with a static cache: it drops the latent
  weights of every BitLinear (a compiled graph then reads only packed bytes), puts the model in eval mode and sets
  `generation_config.cache_implementation = "static"` and a `CompileConfig` (mode "reduce-overhead": torch.compile
  + CUDA graphs), so transformers' `generate` compiles the decode step itself (transformers 5.17+ does this on
  CUDA whenever the cache is static). On the CPU nothing is compiled; generate still uses the static cache.

* `GraphGreedyDecoder(model, max_cache_len=...)`: an explicit greedy decoding loop around the same static cache
  with the whole decode step (forward, argmax, feeding the token back) captured in ONE CUDA graph and replayed
  once per token: no per-token host work beyond the replay. The step is compiled whole by default on CUDA
  ("full": inductor fuses RoPE, norms and residual adds into a few kernels a layer; under a minute for an 8B
  model, and 1.4x the tokens/s of "regional" for BitMat on an H100), or
  only its norms and MLPs ("regional": compiled once, reused by every layer, seconds). On the CPU, or where
  capture fails, it runs the same loop eagerly and says so in `stats`.
  Greedy only; prompts must not be padded.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import bitmat_nn
import torch
from torch import nn

from .convert import pack_and_drop_latent

logger = logging.getLogger(__name__)

COMPILE_CHOICES = ("auto", "regional", "full", "none")


def inductor_pdl_supported(device: torch.device) -> bool:
    """Whether torch.compile can emit programmatic dependent launch here: a Hopper or newer GPU and a torch
    whose inductor has `triton.enable_pdl` (2.9+)."""
    import torch._inductor.config as inductor_config

    return (
        device.type == "cuda"
        and torch.cuda.get_device_capability(device)[0] >= 9
        and hasattr(inductor_config.triton, "enable_pdl")
    )


def compile_kwargs(device: torch.device, mode: str | None, pdl: bool | None) -> dict:
    """torch.compile arguments for a decode step: `mode`, plus inductor's programmatic dependent launch when
    `pdl` is True, or None and the device supports it. PDL lets each kernel of a CUDA graph start while the one
    before it finishes (the next waits on the device, not the host); an 8B model's decode step has ~450 kernels.
    torch.compile takes either a mode or options, so a mode becomes its options."""
    supported = inductor_pdl_supported(device)
    if not (supported if pdl is None else pdl):
        return {"mode": mode}
    if not supported:
        raise ValueError(f"pdl=True needs a CUDA GPU of compute capability 9.0+ and torch >= 2.9 (device {device})")
    import torch._inductor

    mode_options = torch._inductor.list_mode_options(mode) if mode else {}
    return {"mode": None, "options": {**mode_options, "triton.enable_pdl": True}}


def _check_model(model: Any, fn: str) -> None:
    from transformers import PreTrainedModel

    if not isinstance(model, PreTrainedModel) or not hasattr(model, "generate"):
        raise TypeError(
            f"{fn}: argument 'model' must be a transformers causal LM (PreTrainedModel with generate), "
            f"got {type(model).__name__}"
        )


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _check_positive(fn: str, name: str, value: Any, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        what = "a positive int or None" if allow_none else "a positive int"
        raise ValueError(f"{fn}: argument '{name}' must be {what}, got {value!r}")


def prepare_for_fast_generation(
    model: Any,
    *,
    max_batch_size: int | None = None,
    max_cache_len: int | None = None,
    compile: bool = True,
    compile_mode: str = "reduce-overhead",
    fullgraph: bool = False,
    drop_latent_weights: bool = True,
    fuse_projections: bool = True,
    fuse_quantization: bool = True,
    warmup: bool = False,
    pdl: bool | None = None,
):
    """Readies `model` for `model.generate(...)` with a static KV cache and (on CUDA) CUDA graphs.

    * every BitLinear packs its weights and frees its latent weights (`drop_latent_weights=False` keeps them;
      a compiled graph then re-quantizes them at every step, which is slow);
    * `fuse_projections=True`: each layer's q/k/v and gate/up projections share one packed matmul
      (`bitmat_nn.fuse_projections`: 4 matmuls a Llama layer instead of 7, same outputs, no extra memory;
      state_dict and save_pretrained are unchanged; `bitmat_nn.unfuse_projections` undoes it);
    * `fuse_quantization=True`: each RMSNorm before W1.58A8 projections, and each SiLU(gate) * up before an A8
      down projection, also computes the int8 activations of the layers that read it, in one kernel
      (`bitmat_nn.fuse_norms`, `bitmat_nn.fuse_gated_mlps`). It serves eager forwards such as the prefill, where
      it replaces several elementwise kernels and the quantize kernels; compiled steps keep inductor's fusions.
      `bitmat_nn.unfuse_norms` / `unfuse_gated_mlps` undo it;
    * eval mode, `generation_config.cache_implementation = "static"` and, when given, `max_cache_len` (the cache
      is then sized for the longest call once and reused without recompiling);
    * on CUDA with `compile=True`: `generation_config.compile_config = CompileConfig(mode=compile_mode,
      fullgraph=fullgraph, dynamic=False)`: transformers' generate compiles the decode forward (one compilation
      per batch size; the first call of each batch size pays it). `compile=False` sets `disable_compile`.
      On other devices nothing is compiled.
    * `pdl` (default: on for Hopper and newer GPUs where torch has it): the compiled kernels use programmatic
      dependent launch (torch.compile's `triton.enable_pdl`). The mode's options are passed as `options` then.
    * `warmup=True` (needs `max_batch_size`) runs one short generate on dummy tokens so the compilation happens now.

    Works for any transformers causal LM, so the same setup serves as the bf16 baseline. Returns the model.
    """
    fn = "prepare_for_fast_generation"
    _check_model(model, fn)
    _check_positive(fn, "max_batch_size", max_batch_size)
    _check_positive(fn, "max_cache_len", max_cache_len)
    if not isinstance(compile_mode, str) or not compile_mode:
        raise ValueError(f"{fn}: argument 'compile_mode' must be a torch.compile mode name, got {compile_mode!r}")
    if warmup and max_batch_size is None:
        raise ValueError(f"{fn}: warmup=True needs argument 'max_batch_size'")
    model.eval()
    dropped = pack_and_drop_latent(model, show_progress=False) if drop_latent_weights else 0
    fused = bitmat_nn.fuse_projections(model) if fuse_projections else 0
    fused_norms = bitmat_nn.fuse_norms(model) if fuse_quantization else 0
    fused_mlps = bitmat_nn.fuse_gated_mlps(model) if fuse_quantization else 0
    gc = model.generation_config
    gc.cache_implementation = "static"
    if max_cache_len is not None:
        gc.max_cache_len = max_cache_len
    device = _model_device(model)
    compile_kw = {}
    if compile and device.type == "cuda":
        from transformers import CompileConfig

        compile_kw = compile_kwargs(device, compile_mode, pdl)
        gc.compile_config = CompileConfig(fullgraph=fullgraph, dynamic=False, **compile_kw)
        gc.disable_compile = False
    else:
        gc.compile_config = None
        gc.disable_compile = not compile
    # A compiled forward left over from another setup (e.g. before conversion) must not be reused.
    for attr in ("_compiled_call", "_last_compile_config"):
        if attr in vars(model):
            delattr(model, attr)
    model._bitmat_fast_generation = {
        "max_batch_size": max_batch_size,
        "max_cache_len": max_cache_len,
        "compile": bool(compile and device.type == "cuda"),
        "compile_mode": compile_mode,
        "pdl": bool(compile_kw.get("options")),
        "dropped_latent_layers": dropped,
        "fused_projection_groups": fused,
        "fused_norms": fused_norms,
        "fused_gated_mlps": fused_mlps,
    }
    logger.info(
        "%s: static cache%s, %s; latent weights dropped in %d BitLinear layers; %d projection groups, %d norms and "
        "%d gated MLPs fused",
        type(model).__name__,
        f" (max_cache_len={max_cache_len})" if max_cache_len else "",
        f"torch.compile mode={compile_mode}" if compile and device.type == "cuda" else "no compilation",
        dropped,
        fused,
        fused_norms,
        fused_mlps,
    )
    if warmup:
        vocab = int(getattr(model.config.get_text_config(decoder=True), "vocab_size", 2) or 2)
        ids = torch.randint(0, vocab, (max_batch_size, 8), device=device)
        with torch.no_grad():
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False)
    return model


# ---------------------------------------------------------------------------------------------- explicit graphs


def cache_kwargs(model: nn.Module, cache: Any) -> dict:
    """The keyword that passes a KV cache to `model`'s forward: `cache` from transformers 5.24 on (where
    `past_key_values` is deprecated), `past_key_values` before."""
    import inspect

    params = inspect.signature(type(model).forward).parameters
    return {"cache": cache} if "cache" in params else {"past_key_values": cache}


def _cache_layers(cache: Any) -> list:
    layers = getattr(cache, "layers", None)
    if layers is None:
        raise TypeError(f"GraphGreedyDecoder: unsupported cache {type(cache).__name__} (no .layers)")
    return list(layers)


def _set_cache_length(cache: Any, length: int) -> None:
    """Rewinds a static cache to `length` tokens in place (keeps every tensor's address)."""
    for layer in _cache_layers(cache):
        cl = getattr(layer, "cumulative_length", None)
        if isinstance(cl, torch.Tensor):
            cl.fill_(length)
        elif cl is not None:
            layer.cumulative_length = length


def _regional_targets(model: nn.Module) -> list[nn.Module]:
    """The modules compiled by compile="regional": RMSNorms and MLPs (same code in every layer, and free of the
    per-layer cache index that would make a whole decoder layer recompile 32 times)."""
    out = []
    for _, m in model.named_modules():
        name = type(m).__name__
        if name.endswith("RMSNorm") or name.endswith("MLP"):
            out.append(m)
    # Do not compile a norm inside an MLP twice.
    mlps = [m for m in out if type(m).__name__.endswith("MLP")]
    inside = {id(sub) for mlp in mlps for sub in mlp.modules() if sub is not mlp}
    return [m for m in out if id(m) not in inside]


class GraphGreedyDecoder:
    """Greedy decoding with a static KV cache; the decode step (forward + argmax + token feedback) is ONE CUDA graph.

    ``decoder = GraphGreedyDecoder(model, max_cache_len=prompt_len + max_new_tokens)``;
    ``tokens = decoder.generate(input_ids, max_new_tokens=128)`` returns [B, T + max_new_tokens] like
    ``model.generate(..., do_sample=False)``. The first call for a batch size warms up, compiles (see `compile`) and
    captures the graph; later calls of that batch size only replay it. `stats` holds the last call's timings
    (prefill_s, decode_s, steps, method).

    Args:
        model: a transformers causal LM on one device (BitMat or not). Call `prepare_for_fast_generation` first
            (or drop the latent weights some other way) so the step reads packed weights only.
        max_cache_len: the static cache length; prompt length + new tokens must fit.
        compile: "auto" ("full" on CUDA, "none" elsewhere), "full" (torch.compile the whole step), "regional"
            (torch.compile the RMSNorm and MLP modules: one compilation reused by every layer), "none".
        cuda_graph: capture the step in a CUDA graph (default: on CUDA). If capture fails the loop runs eagerly and
            `stats["method"]` / `stats["note"]` say so.
        warmup_steps: eager steps before capture (compile, Triton autotuning, cuBLAS workspaces).
        compile_backend: torch.compile backend ("inductor"; "eager" for tests).
        pdl: inductor's programmatic dependent launch in the compiled step (default: on for Hopper and newer GPUs
            where torch has it; see `compile_kwargs`).
    """

    def __init__(
        self,
        model: Any,
        *,
        max_cache_len: int,
        compile: str = "auto",
        cuda_graph: bool | None = None,
        warmup_steps: int = 3,
        compile_backend: str = "inductor",
        pdl: bool | None = None,
    ):
        fn = "GraphGreedyDecoder"
        _check_model(model, fn)
        _check_positive(fn, "max_cache_len", max_cache_len, allow_none=False)
        if compile not in COMPILE_CHOICES:
            raise ValueError(f"{fn}: argument 'compile' must be one of {COMPILE_CHOICES}, got {compile!r}")
        self.model = model
        self.device = _model_device(model)
        on_cuda = self.device.type == "cuda"
        if compile == "auto":
            compile = "full" if on_cuda else "none"
        self.compile = compile
        self.cuda_graph = on_cuda if cuda_graph is None else bool(cuda_graph and on_cuda)
        self.max_cache_len = max_cache_len
        self.warmup_steps = max(1, int(warmup_steps))
        self.stats: dict[str, Any] = {}
        self._batch: int | None = None
        self._cache = None
        self._cache_arg = next(iter(cache_kwargs(model, None)))  # "cache" or "past_key_values"
        self._graph = None
        self._tok: torch.Tensor | None = None
        self._next: torch.Tensor | None = None
        self._step_fn = self._step
        self._note = ""
        self._compiled_modules: list[nn.Module] = []
        self.pdl = False
        if compile == "full":
            kw = compile_kwargs(self.device, None, pdl) if compile_backend == "inductor" else {}
            self.pdl = bool(kw.get("options"))
            self._step_fn = torch.compile(self._step, dynamic=False, backend=compile_backend, **kw)
        elif compile == "regional":
            for m in _regional_targets(model):
                m.compile(dynamic=False, backend=compile_backend)
                self._compiled_modules.append(m)

    def close(self) -> None:
        """Frees the graph and cache and undoes the regional compilation."""
        for m in self._compiled_modules:
            m._compiled_call_impl = None
        self._compiled_modules = []
        self._graph = self._cache = self._tok = self._next = None
        self._batch = None

    # ------------------------------------------------------------------ internals

    def _new_cache(self):
        from transformers import StaticCache

        cfg = self.model.config.get_text_config(decoder=True)
        return StaticCache(config=cfg, max_cache_len=self.max_cache_len)

    def _forward(self, ids: torch.Tensor, *, last_only: bool) -> torch.Tensor:
        kw = {"logits_to_keep": 1} if last_only else {}
        out = self.model(input_ids=ids, use_cache=True, **{self._cache_arg: self._cache}, **kw)
        return out.logits[:, -1, :]

    def _step(self) -> torch.Tensor:
        logits = self._forward(self._tok, last_only=False)
        nxt = logits.argmax(dim=-1)
        self._tok.copy_(nxt.unsqueeze(-1))
        return nxt

    def _prefill(self, input_ids: torch.Tensor) -> None:
        self._cache.reset()
        logits = self._forward(input_ids, last_only=True)
        self._tok.copy_(logits.argmax(dim=-1, keepdim=True))

    def _setup(self, input_ids: torch.Tensor) -> None:
        """A cache and static token buffer for this batch size; warm-up and graph capture on CUDA."""
        b = input_ids.shape[0]
        self._graph = None
        self._cache = self._new_cache()
        self._tok = torch.zeros(b, 1, dtype=torch.long, device=self.device)
        self._batch = b
        self._note = ""
        self._prefill(input_ids)  # allocates the cache tensors (lazily, at the first update)
        start = input_ids.shape[1]
        if not self.cuda_graph:
            self._next = None
            return
        try:
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                for _ in range(self.warmup_steps):
                    self._step_fn()
            torch.cuda.current_stream(self.device).wait_stream(stream)
            torch.cuda.synchronize(self.device)
            _set_cache_length(self._cache, start)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._next = self._step_fn()
            torch.cuda.synchronize(self.device)
            self._graph = graph
        except Exception as e:  # capture is an optimization: fall back to the eager loop
            self._graph = None
            self._next = None
            self._note = f"CUDA graph capture failed, eager loop: {type(e).__name__}: {e}"[:400]
            logger.warning("GraphGreedyDecoder: %s", self._note)
            torch.cuda.synchronize(self.device)

    # ------------------------------------------------------------------ public

    @torch.no_grad()
    def generate(
        self,
        input_ids: torch.Tensor,
        *,
        max_new_tokens: int,
        eos_token_id: int | list[int] | None = None,
        pad_token_id: int | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Greedy continuation of `input_ids` [B, T] (no padding): returns [B, T + max_new_tokens]. After a row's
        first `eos_token_id` the rest of the row is `pad_token_id` (default: the eos id), as transformers does;
        the loop itself never synchronizes with the host, so it always runs max_new_tokens steps."""
        fn = "GraphGreedyDecoder.generate"
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.dtype != torch.long:
            is_t = isinstance(input_ids, torch.Tensor)
            got = f"{input_ids.dtype}, shape {tuple(input_ids.shape)}" if is_t else type(input_ids).__name__
            raise ValueError(f"{fn}: argument 'input_ids' must be a 2-D long tensor [batch, tokens], got {got}")
        if input_ids.shape[0] < 1 or input_ids.shape[1] < 1:
            raise ValueError(f"{fn}: argument 'input_ids' must be non-empty, got shape {tuple(input_ids.shape)}")
        _check_positive(fn, "max_new_tokens", max_new_tokens, allow_none=False)
        if input_ids.shape[1] + max_new_tokens > self.max_cache_len:
            raise ValueError(
                f"{fn}: prompt length {input_ids.shape[1]} + max_new_tokens {max_new_tokens} exceeds the decoder's "
                f"max_cache_len {self.max_cache_len}"
            )
        if attention_mask is not None and not bool((attention_mask != 0).all()):
            raise ValueError(f"{fn}: padded prompts are not supported (argument 'attention_mask' has zeros)")
        input_ids = input_ids.to(self.device)
        b, t = input_ids.shape
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda *a: None)
        setup_s = 0.0
        if self._batch != b or self._cache is None:
            t0 = time.perf_counter()
            self._setup(input_ids)
            sync(self.device)
            setup_s = time.perf_counter() - t0
        out = torch.empty(b, max_new_tokens, dtype=torch.long, device=self.device)
        sync(self.device)
        t0 = time.perf_counter()
        self._prefill(input_ids)
        out[:, 0] = self._tok[:, 0]
        sync(self.device)
        t1 = time.perf_counter()
        for i in range(1, max_new_tokens):
            if self._graph is not None:
                self._graph.replay()
                out[:, i] = self._next
            else:
                out[:, i] = self._step_fn()
        sync(self.device)
        t2 = time.perf_counter()
        if eos_token_id is not None:
            out = _pad_after_eos(out, eos_token_id, pad_token_id)
        self.stats = {
            "batch": b,
            "prompt_len": t,
            "new_tokens": max_new_tokens,
            "setup_s": setup_s,
            "prefill_s": t1 - t0,
            "decode_s": t2 - t1,
            "decode_steps": max_new_tokens - 1,
            "method": "cuda-graph" if self._graph is not None else f"eager-{self.device.type}",
            "compile": self.compile,
            "pdl": self.pdl,
            "note": self._note,
        }
        return torch.cat([input_ids, out], dim=1)


def _pad_after_eos(out: torch.Tensor, eos_token_id: int | list[int], pad_token_id: int | None) -> torch.Tensor:
    eos = torch.as_tensor([eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id), device=out.device)
    is_eos = torch.isin(out, eos)
    # A position is finished when an eos came strictly before it.
    finished = (is_eos.cumsum(dim=1) - is_eos.long()) > 0
    pad = int(pad_token_id if pad_token_id is not None else eos[0].item())
    return out.masked_fill(finished, pad)


__all__ = [
    "COMPILE_CHOICES",
    "GraphGreedyDecoder",
    "cache_kwargs",
    "compile_kwargs",
    "inductor_pdl_supported",
    "prepare_for_fast_generation",
]
