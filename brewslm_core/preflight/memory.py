"""Peak-memory estimate of one training process, and the config change that makes it fit.

The estimate adds what the engine keeps alive at its peak (the backward pass of the largest
micro-batch):

- weights: every parameter in fp32 (the engine builds fp32 models; autocast casts on the fly);
- gradients: one fp32 value per trainable parameter;
- optimizer: AdamW keeps two fp32 moments per trainable parameter;
- activations: what autograd saves per token per layer, counted from the architecture
  (see ``_per_token_layer_elements``), times the tokens of the largest micro-batch;
- logits: the vocabulary projection of a causal LM (the logits, the log-softmax autograd keeps
  and the gradient that flows back: three copies), over every token of the micro-batch;
- overhead: the framework itself (constants below, measured on the project's reference machine).

Under FSDP (``shards`` > 1) the engine shards the transformer blocks: each rank keeps 1/shards of
the blocks' weights, gradients and optimizer state, plus whole copies of what lies outside
them (embeddings, heads) and of the blocks it has gathered to compute. Activations are not
sharded: every rank runs its own micro-batch.

Constants are documented where they are defined; none is fitted to a training run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..contracts.preflight import MemoryEstimate

if TYPE_CHECKING:
    from ..models import ModelRef
    from ..train import TrainConfig

MB = 2**20
FP32 = 4

# Resident memory of a Python process once torch 2.13 (CPU), transformers 5.23, peft 0.21, a
# fast tokenizer and our event store are imported: 395 MB measured with /proc/self/statm
# (torch alone 219 MB, + transformers and peft 380 MB, + tokenizer 395 MB), rounded up for the
# allocator's arenas and the oneDNN/OpenMP scratch buffers the first kernels create.
CPU_FRAMEWORK_MB = 450.0
# A CUDA context with cuBLAS/cuDNN workspaces takes about this much device memory before
# the first tensor (NVIDIA's figure for recent drivers is 300-600 MB).
CUDA_CONTEXT_MB = 500.0
# Under bf16/fp16 autocast matmul outputs are 2 bytes, while norms, softmax and residual
# sums stay fp32: about 2.5 bytes per saved value on average instead of 4.
AUTOCAST_ACTIVATION_BYTES = 2.5
# Budget: the engine's RSS watchdog stops a CPU run at 90% of available RAM; on a GPU we
# leave 5% for the allocator's fragmentation.
CPU_BUDGET_SHARE = 0.90
CUDA_BUDGET_SHARE = 0.95
# Logits of a causal LM alive at the peak: the logits, log-softmax's saved output, its grad.
LOGITS_COPIES = 3


@dataclass(frozen=True)
class ModelFacts:
    """Architecture numbers the estimate needs, read from the model's config (no weights)."""

    model_type: str
    kind: str
    total_params: int
    trainable_params: int
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    vocab: int
    attention_dropout: bool
    no_split_modules: tuple[str, ...] = ()  # the repeated block class (FSDP wraps these)
    # speech encoder-decoders (whisper): the encoder runs over a fixed number of audio frames
    # per example, whatever the transcript's length
    source_positions: int = 0
    encoder_layers: int = 0
    # parameters inside the blocks (what FSDP shards), all and trainable
    block_params: int = 0
    block_trainable: int = 0


def _config_numbers(config: Any) -> dict[str, int]:
    text = getattr(config, "text_config", None) or config  # multimodal configs nest the LM
    get = lambda *names, default=0: next(  # noqa: E731 - a tiny local lookup
        (int(getattr(text, n)) for n in names if getattr(text, n, None) is not None), default
    )
    hidden = get("hidden_size", "d_model", "n_embd")
    heads = get("num_attention_heads", "encoder_attention_heads", "n_head", default=1)
    return {
        "layers": get("decoder_layers", "num_hidden_layers", "num_layers", "n_layer"),
        "hidden": hidden,
        "intermediate": get("intermediate_size", "encoder_ffn_dim", "n_inner", default=4 * hidden),
        "heads": heads,
        "kv_heads": get("num_key_value_heads", default=heads),
        "vocab": get("vocab_size"),
    }


def model_facts(ref: ModelRef, config: TrainConfig, n_labels: int = 2) -> ModelFacts:
    """Build the model on torch's meta device (no memory, no weights read) and count what the
    run will hold and train, with the same peft LoRA wrapping the handlers apply."""
    import torch
    from transformers import AutoConfig

    from ..train import HANDLERS

    hf_config = AutoConfig.from_pretrained(ref.path, trust_remote_code=False)
    auto = _auto_class(ref.kind)
    with torch.device("meta"):
        model = auto.from_config(hf_config)
    total = sum(p.numel() for p in model.parameters())
    numbers = _config_numbers(hf_config)
    blocks = tuple(getattr(model, "_no_split_modules", None) or ())
    head = numbers["hidden"] * max(n_labels, 2) + max(n_labels, 2) if ref.kind == "encoder" else 0
    if config.method == "full":
        trainable = total + head
    else:
        from peft import LoraConfig, get_peft_model

        handler = HANDLERS.get(config.task_profile) if config.task_profile in HANDLERS else None
        targets = config.lora_targets
        if targets is None:
            targets = getattr(handler, "lora_targets", None) or "all-linear"
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            target_modules=list(targets) if isinstance(targets, tuple) else targets,
            bias="none",
        )
        model = get_peft_model(model, lora)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad) + head
    in_blocks, trainable_in_blocks = _block_counts(model, blocks)
    dropout = any(
        float(getattr(hf_config, n, 0.0) or 0.0) > 0
        for n in ("attention_probs_dropout_prob", "attention_dropout", "attn_pdrop")
    )
    return ModelFacts(
        model_type=str(getattr(hf_config, "model_type", "")),
        kind=ref.kind,
        total_params=int(total + head),
        trainable_params=int(trainable),
        attention_dropout=dropout,
        no_split_modules=blocks,
        block_params=in_blocks,
        block_trainable=trainable_in_blocks,
        source_positions=int(getattr(hf_config, "max_source_positions", 0) or 0)
        if ref.kind == "speech_seq2seq" else 0,
        encoder_layers=int(getattr(hf_config, "encoder_layers", 0) or 0)
        if ref.kind == "speech_seq2seq" else 0,
        **numbers,
    )


def _block_counts(model: Any, blocks: tuple[str, ...]) -> tuple[int, int]:
    """(parameters, trainable parameters) inside the outermost ``blocks`` modules."""
    seen: set[int] = set()
    total = trainable = 0
    for module in model.modules():
        if type(module).__name__ not in blocks:
            continue
        for p in module.parameters():
            if id(p) not in seen:  # nested blocks and tied weights count once
                seen.add(id(p))
                total += p.numel()
                trainable += p.numel() if p.requires_grad else 0
    return total, trainable


def _auto_class(kind: str) -> Any:
    import transformers

    return {
        "encoder": transformers.AutoModel,
        "causal_lm": transformers.AutoModelForCausalLM,
        "speech_seq2seq": transformers.AutoModelForSpeechSeq2Seq,
        "seq2seq_lm": transformers.AutoModelForSeq2SeqLM,
    }[kind]


def _per_token_layer_elements(facts: ModelFacts, seq: int) -> float:
    """Values autograd saves per token in one transformer layer during training.

    Counted op by op from the layer's forward; ``h`` hidden, ``i`` MLP width, ``a`` heads:
    - encoder (BERT-style, post-norm, GELU, dropout): layer input h; q, k, v 3h; attention
      output h; two dropout masks 2 x h/4 (1 byte each); two LayerNorm inputs 2h and the first
      norm's output h; MLP pre-activation and GELU output 2i; attention probabilities a*s per
      token (math SDPA path: softmax output, plus the dropped copy and a byte mask when
      attention dropout is on). About 8.5h + 2i + a*s*(1 or 2.25).
    - decoder (Llama-style, pre-RMSNorm, SwiGLU, rotary, GQA): two RMSNorms 2 x 3h (fp32
      input, normalised value, output); q h, k and v 2*kv; rotary 2h + 2kv (rotate-half copy
      and embedded q/k); k and v repeated to all heads 2h; attention output h; gate, up,
      activation and product 4i; attention probabilities a*s.
      About 13h + 4kv + 4i + a*s (kv = h * kv_heads / heads).
    """
    h, i, a = facts.hidden, facts.intermediate, facts.heads
    probs = a * seq
    if facts.kind == "encoder":
        return 8.5 * h + 2 * i + probs * (2.25 if facts.attention_dropout else 1.0)
    kv = h * facts.kv_heads / max(facts.heads, 1)
    return 13 * h + 4 * kv + 4 * i + probs


def replace_kind(facts: ModelFacts, kind: str) -> ModelFacts:
    return replace(facts, kind=kind, attention_dropout=False)


def micro_batch_tokens(config: TrainConfig, token_max: int | None) -> tuple[int, int]:
    """(tokens in the largest micro-batch, longest row) the peak is sized for.

    Length-bucketed batching puts the longest examples together, so the peak batch is
    ``batch_size`` examples of the longest length the data has (capped by max_length).
    """
    seq = min(config.max_length, token_max) if token_max else config.max_length
    seq = max(int(seq), 1)
    return config.batch_size * seq, seq


def estimate_memory(
    facts: ModelFacts,
    config: TrainConfig,
    *,
    device: str,
    budget_mb: float,
    token_max: int | None = None,
    shards: int = 1,
) -> MemoryEstimate:
    """Peak memory (MB) of one training process for ``facts``' model with ``config`` on
    ``device``; ``shards`` > 1 is one rank of an FSDP run over that many ranks."""
    tokens, seq = micro_batch_tokens(config, token_max)
    half = config.precision in ("bf16", "fp16")
    act_bytes = AUTOCAST_ACTIVATION_BYTES if half else FP32
    held, held_trainable = _held_params(facts, shards)
    weights = held * FP32
    if half:  # autocast caches a half copy of each trainable weight for the step
        weights += held_trainable * 2
    grads = held_trainable * FP32
    optim = 2 * _owned(facts.trainable_params, facts.block_trainable, shards) * FP32
    per_token = _per_token_layer_elements(facts, seq) * facts.layers
    # the embedding output (and, for encoders, its LayerNorm) enters the first layer
    per_token += 2 * facts.hidden
    activations = tokens * per_token * act_bytes
    if facts.source_positions:  # the audio encoder: bidirectional layers over every frame
        frames = config.batch_size * facts.source_positions
        encoder = replace_kind(facts, "encoder")
        per_frame = _per_token_layer_elements(encoder, facts.source_positions) * facts.encoder_layers
        activations += frames * (per_frame + 2 * facts.hidden) * act_bytes
    logits = 0.0
    if facts.kind != "encoder" and facts.vocab:
        logits = LOGITS_COPIES * tokens * facts.vocab * FP32
    overhead = CUDA_CONTEXT_MB if device == "cuda" else CPU_FRAMEWORK_MB
    parts = [x / MB for x in (weights, grads, optim, activations, logits)]
    total = sum(parts) + overhead
    if shards > 1:
        # every rank builds the whole model before cutting it into shards
        total = max(total, facts.total_params * FP32 / MB + overhead)
    return MemoryEstimate(
        device=device,
        weights_mb=round(parts[0], 1),
        gradients_mb=round(parts[1], 1),
        optimizer_mb=round(parts[2], 1),
        activations_mb=round(parts[3], 1),
        logits_mb=round(parts[4], 1),
        overhead_mb=overhead,
        total_mb=round(total, 1),
        budget_mb=round(budget_mb, 1),
        fits=total <= budget_mb,
        basis={
            "model_type": facts.model_type,
            "kind": facts.kind,
            "total_params": facts.total_params,
            "trainable_params": facts.trainable_params,
            "layers": facts.layers,
            "hidden": facts.hidden,
            "intermediate": facts.intermediate,
            "heads": facts.heads,
            "kv_heads": facts.kv_heads,
            "vocab": facts.vocab,
            "micro_batch_tokens": tokens,
            "seq_len": seq,
            "activation_bytes": act_bytes,
            "method": config.method,
            "precision": config.precision,
            "no_split_modules": list(facts.no_split_modules),
            "audio_frames_per_example": facts.source_positions,
            "fsdp_shards": shards,
        },
    )


# Blocks a rank holds whole at once under FSDP: the one it computes and the one prefetched.
GATHERED_BLOCKS = 2


def _owned(params: int, in_blocks: int, shards: int) -> float:
    """Values a rank owns: the replicated rest, plus its 1/shards slice of the blocks."""
    if shards <= 1 or in_blocks <= 0:
        return float(params)
    return params - in_blocks + in_blocks / shards


def _held_params(facts: ModelFacts, shards: int) -> tuple[float, float]:
    """(weights, trainable weights) alive on one rank at its peak: what it owns plus the
    blocks gathered for compute (their gradients are full-size until reduce-scattered)."""
    weights = _owned(facts.total_params, facts.block_params, shards)
    trainable = _owned(facts.trainable_params, facts.block_trainable, shards)
    if shards > 1 and facts.block_params and facts.layers:
        gathered = min(GATHERED_BLOCKS, facts.layers) / facts.layers
        weights += facts.block_params * gathered
        trainable += facts.block_trainable * gathered
    return weights, trainable


def budget_for(device: str, hardware: Any, override_mb: float | None = None) -> float:
    """Memory a run may use: the override, else a share of available RAM or of one GPU."""
    if override_mb is not None:
        return float(override_mb)
    if device == "cuda" and hardware.cuda_devices:
        return min(d["free_mb"] for d in hardware.cuda_devices) * CUDA_BUDGET_SHARE
    return hardware.ram_available_mb * CPU_BUDGET_SHARE


def _candidates(config: TrainConfig, precisions: list[str], length_floor: int
                ) -> Iterator[TrainConfig]:
    """Config changes in the order they disturb training least.

    1. smaller micro-batches with more accumulation (the same effective batch: the same
       updates, only slower); 2. LoRA instead of full fine-tuning; 3. a half precision the
    device runs natively; 4. shorter rows, down to the data's p95 length, then halving.
    """
    effective = config.batch_size * config.grad_accum
    stages: list[TrainConfig] = [config]

    def shrink_batch(base: TrainConfig) -> Iterator[TrainConfig]:
        batch = base.batch_size
        while batch > 1:
            batch = max(1, batch // 2)
            yield replace(base, batch_size=batch, grad_accum=max(1, -(-effective // batch)))

    for cfg in list(stages):
        yield from shrink_batch(cfg)
    if config.method == "full":
        lora = replace(config, method="lora")
        stages.append(lora)
        yield lora
        yield from shrink_batch(lora)
    for precision in precisions:
        for cfg in list(stages):
            half = replace(cfg, precision=precision)
            stages.append(half)
            yield half
            yield from shrink_batch(half)
    length = config.max_length
    while length > length_floor:
        length = max(length_floor, length // 2)
        for cfg in list(stages):
            shorter = replace(cfg, max_length=length)
            yield shorter
            yield from shrink_batch(shorter)


def suggest_fit(
    facts_for: Any,
    config: TrainConfig,
    *,
    device: str,
    budget_mb: float,
    token_max: int | None,
    precisions: list[str],
    length_floor: int = 32,
    shards: int = 1,
) -> tuple[dict[str, Any], MemoryEstimate] | None:
    """The first config change (fields -> new values) whose estimate fits, with that estimate.

    ``facts_for(config)`` gives the ModelFacts for a config (trainable counts depend on the
    method). None when nothing short of another model or machine fits.
    """
    cache: dict[tuple, ModelFacts] = {}
    for cand in _candidates(config, precisions, min(length_floor, config.max_length)):
        key = (cand.method, cand.lora_r)
        if key not in cache:
            cache[key] = facts_for(cand)
        est = estimate_memory(cache[key], cand, device=device, budget_mb=budget_mb,
                              token_max=token_max, shards=shards)
        if est.fits:
            changes = {
                k: getattr(cand, k)
                for k in ("batch_size", "grad_accum", "method", "precision", "max_length")
                if getattr(cand, k) != getattr(config, k)
            }
            return changes, est
    return None
