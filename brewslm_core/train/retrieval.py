"""Dense retrieval for RAG: MiniLM sentence embeddings, cosine similarity, top-k.

A ``Passage`` is a (title, text) unit the generator may read. The corpus of a project
(``project_corpus``) is built from the Clean stage's outputs:

- chunks of documents that are not RAG rows (``chunks.jsonl``: token windows cut from the
  cleaned document text, no title);
- the passages of the cleaned RAG rows (``rows.jsonl``), deduplicated by (title, text). A RAG
  row's own chunks are skipped: its document text holds the question and the gold answer, so
  retrieving them would hand the answer to the model.

Embeddings are all-MiniLM-L6-v2 (ships offline), mean-pooled over real tokens and
L2-normalised, so a dot product is the cosine. They are cached in memory by text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from ..project import Project

CHUNKS_NAME = "chunks.jsonl"
ROWS_NAME = "rows.jsonl"


@dataclass(frozen=True, slots=True)
class Passage:
    title: str
    text: str
    source: str = ""  # chunk id, or "<import_id>:<row_index>" of the row it came from

    def embed_text(self) -> str:
        return f"{self.title}: {self.text}" if self.title else self.text


def project_corpus(project: Project) -> list[Passage]:
    """Retrievable passages from the project's cleaned rows and chunks ([] before a clean)."""
    root = Path(project.cleaned_dir)
    rows_path, chunks_path = root / ROWS_NAME, root / CHUNKS_NAME
    rag_rows: set[tuple[str, int]] = set()
    out: list[Passage] = []
    seen: set[tuple[str, str]] = set()
    if rows_path.is_file():
        with rows_path.open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                if row.get("shape") != "rag":
                    continue
                rag_rows.add((str(row.get("import_id")), int(row.get("row_index", -1))))
                for p in row["record"].get("passages") or []:
                    key = (str(p.get("title", "")), str(p.get("text", "")))
                    if key[1].strip() and key not in seen:
                        seen.add(key)
                        out.append(Passage(*key, source=f"{row.get('import_id')}:{row.get('row_index')}"))
    if chunks_path.is_file():
        with chunks_path.open(encoding="utf-8") as fh:
            for line in fh:
                chunk = json.loads(line)
                if (str(chunk.get("import_id")), int(chunk.get("row_index", -1))) in rag_rows:
                    continue
                if str(chunk.get("text", "")).strip():
                    out.append(Passage("", chunk["text"], source=str(chunk.get("chunk_id", ""))))
    return out


def record_passages(record: dict) -> list[Passage]:
    """A RAG record's own passages (the distractor setting: gold passages among others)."""
    return [
        Passage(str(p.get("title", "")), str(p.get("text", "")))
        for p in record.get("passages") or []
        if str(p.get("text", "")).strip()
    ]


class Embedder:
    """MiniLM sentence embeddings with an in-memory cache keyed by the text's hash."""

    def __init__(self, model_path: str | Path | None = None, max_length: int = 256, batch_size: int = 32):
        self.model_path = model_path
        self.max_length, self.batch_size = max_length, batch_size
        self.tokenizer: Any = None
        self.model: Any = None
        self.cache: dict[bytes, Any] = {}

    def _load(self) -> None:
        if self.model is not None:
            return
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = self.model_path
        if path is None:
            from ..models import materialize, resolve_base

            path = materialize(resolve_base("minilm", "classification"))
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """[len(texts), dim] unit vectors; texts seen before come from the cache."""
        import torch

        keys = [hashlib.blake2b(t.encode("utf-8"), digest_size=16).digest() for t in texts]
        todo = list(dict.fromkeys(k for k in keys if k not in self.cache))
        if todo:
            self._load()
            text_of = dict(zip(keys, texts, strict=True))
            with torch.no_grad():
                for i in range(0, len(todo), self.batch_size):
                    part = todo[i : i + self.batch_size]
                    enc = self.tokenizer(
                        [text_of[k] for k in part],
                        padding=True,
                        truncation=True,
                        max_length=self.max_length,
                        return_tensors="pt",
                    )
                    hidden = self.model(**enc).last_hidden_state
                    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)
                    vectors = torch.nn.functional.normalize(pooled, dim=-1)
                    for k, v in zip(part, vectors, strict=True):
                        self.cache[k] = v
        if not keys:
            return torch.zeros((0, 1))
        return torch.stack([self.cache[k] for k in keys])


def top_k(
    embedder: Embedder, questions: Sequence[str], passages: Sequence[Passage], k: int
) -> list[list[tuple[Passage, float]]]:
    """The k passages most similar to each question (cosine), best first."""
    import torch

    if not passages or not questions:
        return [[] for _ in questions]
    q = embedder.embed(list(questions))
    p = embedder.embed([x.embed_text() for x in passages])
    scores = q @ p.T
    values, index = torch.topk(scores, min(k, len(passages)), dim=1)
    return [
        [(passages[int(i)], float(v)) for v, i in zip(vs, ix, strict=True)]
        for vs, ix in zip(values, index, strict=True)
    ]


def retrieve(
    embedder: Embedder,
    records: Sequence[dict],
    k: int,
    corpus: Sequence[Passage] | None = None,
) -> list[list[tuple[Passage, float]]]:
    """Top-k passages per RAG record: from ``corpus`` when given and non-empty, else from
    each record's own passages."""
    questions = [str(r.get("question", "")) for r in records]
    if corpus:
        return top_k(embedder, questions, corpus, k)
    own = [record_passages(r) for r in records]
    # one batched pass fills the cache; the per-record rankings below then only read it
    embedder.embed(questions + [p.embed_text() for ps in own for p in ps])
    out = []
    for question, passages in zip(questions, own, strict=True):
        out.extend(top_k(embedder, [question], passages, k))
    return out


def titles(found: Iterable[tuple[Passage, float]]) -> set[str]:
    return {p.title for p, _ in found if p.title}
