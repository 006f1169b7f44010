"""Retrieval-augmented answering: MiniLM retrieval + a generator (default SmolLM2-135M-Instruct).

For each RAG record ``{"question", "answer", "passages", "supporting"}`` the top-k passages
(cosine over MiniLM embeddings, see ``train.retrieval``) are put first in the prompt
("Answer from the passages…"), cut to a token budget so question and answer always fit
``max_length``; the answer is the assistant turn and the only supervised tokens.

Where passages come from, first that applies: the corpus given to ``RAGHandler(corpus=…)``; one
set around a run with ``use_corpus(…)``; the project's cleaned corpus (``project_corpus``, read
in ``bind`` when the engine trains inside a project that has been cleaned); else each record's
own passages (the distractor setting). ``state()["notes"]`` says which was used and its size.
Train and eval prompts are built the same way from what was retrieved.

``score()``: exact match and token F1 of greedy answers (SQuAD normalisation); retrieval
recall@k of the supporting titles (None when the passages carry no titles); the share of rows
whose gold answer appears in the retrieved passages; and ``answer_tokens_in_passages``, the
share of generated answer tokens found in the passages the model was shown - a lexical proxy
for faithfulness, not a judgement of it; ``retrieved_sources`` names where the first eval rows'
passages came from.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..retrieval import Embedder, Passage, project_corpus, retrieve, titles
from .base import HandlerHooks
from .generative import GenerativeTask
from .qa import best_over_golds, normalize_answer

if TYPE_CHECKING:
    import torch

    from ..config import TrainConfig

INSTRUCTION = "Answer from the passages below with a short answer."
SOURCES_SHOWN = 8  # eval rows whose retrieved passage sources score() lists
_CORPUS: ContextVar[Sequence[Passage] | None] = ContextVar("rag_corpus", default=None)


@contextmanager
def use_corpus(corpus: Sequence[Passage] | None) -> Iterator[None]:
    """Retrieve from ``corpus`` in RAG runs started inside the block (same thread)."""
    token = _CORPUS.set(corpus)
    try:
        yield
    finally:
        _CORPUS.reset(token)


def rag_prompt(question: str, shown: Sequence[tuple[str, str]]) -> str:
    blocks = [f"[{i}] {t}: {x}" if t else f"[{i}] {x}" for i, (t, x) in enumerate(shown, 1)]
    return f"{INSTRUCTION}\n\n" + "\n".join(blocks) + f"\n\nQuestion: {question}"


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


class RAGHandler(HandlerHooks):
    task_profile = "rag"
    top_k = 3
    max_new_tokens = 24

    def __init__(self, corpus: Sequence[Passage] | None = None, embedder: Embedder | None = None) -> None:
        self.corpus = corpus
        self.corpus_source = "given" if corpus is not None else ""
        self.embedder = embedder or Embedder()
        self.max_length = 512
        self.gen = GenerativeTask(
            "rag",
            lambda rec: rag_prompt(rec["question"], rec["_shown"]),
            lambda rec: str(rec.get("answer", "")),
            self._metrics,
            max_new_tokens=self.max_new_tokens,
            row_check=_row_check,
        )

    # ---- retrieval into prompts -----------------------------------------------------------
    def _trim(self, texts: list[str], budget: int) -> list[str]:
        """Each text cut to its first ``budget`` generator tokens (at a token boundary)."""
        if not texts:
            return []
        enc = self.gen.sft.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        out = []
        for text, offsets in zip(texts, enc["offset_mapping"], strict=True):
            if len(offsets) <= budget:
                out.append(text)
            else:
                out.append(text[: offsets[budget - 1][1]] if budget > 0 else "")
        return out

    def with_context(self, rows: Sequence[dict]) -> list[dict]:
        """Rows whose records carry what was retrieved (``_retrieved``) and what the prompt
        shows (``_shown``: (title, trimmed text))."""
        records = [r["record"] for r in rows]
        found = retrieve(self.embedder, records, self.top_k, self.corpus)
        tok = self.gen.sft.tokenizer
        # the exact cost of everything but the passage texts: the full chat with empty passages
        frames = [
            tok.apply_chat_template(
                [
                    {"role": "user", "content": rag_prompt(r["question"], [(p.title, "") for p, _ in h])},
                    {"role": "assistant", "content": str(r.get("answer", ""))},
                ],
                tokenize=False,
            )
            for r, h in zip(records, found, strict=True)
        ]
        fixed = tok(frames, add_special_tokens=False)["input_ids"]
        out = []
        for record, hits, ids in zip(records, found, fixed, strict=True):
            # what is left is shared by the passages; 2 tokens each spare for merges at the seams
            room = self.max_length - len(ids) - 2 * len(hits)
            texts = self._trim([p.text for p, _ in hits], max(0, room // max(len(hits), 1)))
            shown = [(p.title, t) for (p, _), t in zip(hits, texts, strict=True)]
            out.append({"record": {**record, "_retrieved": hits, "_shown": shown}})
        return out

    # ---- the protocol -----------------------------------------------------------------------
    def bind(self, project: Any, run_dir: Path) -> None:
        """Retrieve from the project's cleaned rows and chunks, unless a corpus was given."""
        if self.corpus is not None or _CORPUS.get() is not None:
            return
        found = project_corpus(project)
        if found:  # before a clean there is none: records keep their own passages
            self.corpus, self.corpus_source = found, "project"

    def setup(self, model_path: Path, train_rows: Sequence[dict], config: TrainConfig) -> None:
        if self.corpus is None and _CORPUS.get() is not None:
            self.corpus, self.corpus_source = _CORPUS.get(), "use_corpus"
        self.max_length = config.max_length
        self.gen.sft.setup(model_path, [], config)

    def build_model(self, config: TrainConfig) -> torch.nn.Module:
        return self.gen.build_model(config)

    def encode(self, rows: Sequence[dict]) -> list:
        return self.gen.encode(self.with_context(rows))

    def collate(self, examples: Sequence, packing: bool) -> dict[str, Any]:
        return self.gen.collate(examples, packing)

    def loss(self, model: torch.nn.Module, batch: dict[str, Any]):
        return self.gen.loss(model, batch)

    def score(self, model: torch.nn.Module, rows: Sequence[dict], per_example: bool = False
              ) -> dict[str, Any]:
        if not rows:
            return {"n": 0}
        return self.gen.score(model, self.with_context(rows), per_example=per_example)

    # ---- loading and prediction -------------------------------------------------------------
    def restore(self, base_path: Path, weights_dir: Path, state: dict[str, Any],
                config: TrainConfig) -> torch.nn.Module:
        """The generator (``bind`` has already read the project corpus when the run used one)."""
        self.top_k = int(state.get("top_k", self.top_k))
        self.max_length = int(state.get("max_length", config.max_length))
        return self.gen.restore(base_path, weights_dir, state, config)

    def predict_rows(self, model: torch.nn.Module, rows: Sequence[dict]) -> list[dict[str, Any]]:
        """The generated answer and its evidence: the passages retrieved and shown, with scores."""
        live = self.with_context([{"record": {"answer": "", **r["record"]}} for r in rows])
        texts = self.gen.generate(model, live)
        out = []
        for text, row in zip(texts, live, strict=True):
            hits = row["record"]["_retrieved"]
            out.append({
                "answer": text,
                "evidence": [{"title": p.title, "text": p.text, "source": p.source, "score": float(s)}
                             for p, s in hits],
            })
        return out

    def save(self, model: torch.nn.Module, out_dir: Path) -> None:
        self.gen.save(model, out_dir)

    def corpus_note(self) -> str:
        if not self.corpus:
            return "retrieval from each record's own passages (no corpus given, none cleaned in the project)"
        where = {
            "project": "the project's cleaned rows and chunks",
            "use_corpus": "the corpus set with use_corpus()",
            "given": "the corpus given to RAGHandler(corpus=...)",
        }[self.corpus_source or "given"]
        return f"retrieval from {where}: {len(self.corpus)} passages"

    def state(self) -> dict[str, Any]:
        inner = self.gen.state()
        return {
            **inner,
            "top_k": self.top_k,
            "retrieval": "corpus" if self.corpus else "record_passages",
            "corpus_source": (self.corpus_source or "given") if self.corpus else None,
            "corpus_passages": len(self.corpus or []),
            "notes": [*inner.get("notes", []), self.corpus_note()],
            "embedder": "all-MiniLM-L6-v2 mean-pooled, normalised (cosine)",
            "loss_on": "answer_tokens",
        }

    # ---- metrics ----------------------------------------------------------------------------
    def _embedding_faithfulness(self, generated: list[str], rows: Sequence[dict]) -> float | None:
        """Mean over answered rows of the best cosine (MiniLM) between the answer and a passage
        the model was shown: a proxy for faithfulness, not a judgement of it."""
        pairs = [(t, [x for _, x in row["record"]["_shown"] if x])
                 for t, row in zip(generated, rows, strict=True) if t.strip()]
        pairs = [(t, shown) for t, shown in pairs if shown]
        if not pairs:
            return None
        answers = self.embedder.embed([t for t, _ in pairs])
        best = []
        for k, (_, shown) in enumerate(pairs):
            sims = self.embedder.embed(shown) @ answers[k]
            best.append(float(sims.max()))
        return _mean(best)

    def _metrics(self, generated: list[str], rows: Sequence[dict]) -> dict[str, Any]:
        em, f1, recall, hit, grounded = [], [], [], [], []
        for text, row in zip(generated, rows, strict=True):
            rec = row["record"]
            gold = str(rec.get("answer", ""))
            e, f = best_over_golds(text, [gold])
            em.append(e)
            f1.append(f)
            retrieved = " ".join(p.text for p, _ in rec["_retrieved"])
            hit.append(float(bool(normalize_answer(gold)) and
                             f" {normalize_answer(gold)} " in f" {normalize_answer(retrieved)} "))
            wanted = {s["title"] for s in rec.get("supporting") or [] if s.get("title")}
            if wanted and any(p.title for p, _ in rec["_retrieved"]):
                recall.append(len(wanted & titles(rec["_retrieved"])) / len(wanted))
            answer_tokens = normalize_answer(text).split()
            if answer_tokens:
                shown = set(normalize_answer(" ".join(t for _, t in rec["_shown"])).split())
                grounded.append(sum(t in shown for t in answer_tokens) / len(answer_tokens))
        return {
            "n": len(rows),
            "exact_match": _mean(em),
            "f1": _mean(f1),
            "k": self.top_k,
            "retrieval_recall_at_k": _mean(recall),
            "retrieval_recall_n": len(recall),
            "answer_in_retrieved_at_k": _mean(hit),
            "answer_tokens_in_passages": _mean(grounded),
            # the same lexical proxy under the name Evaluate gates on (no judge involved)
            "faithfulness_lexical": _mean(grounded),
            "faithfulness_embedding": self._embedding_faithfulness(generated, rows),
            "empty_answers": len(generated) - len(grounded),
            # where the first rows' passages came from: chunk ids or "<import_id>:<row_index>"
            # for a corpus, "" for a record's own passages
            "retrieved_sources": [
                [p.source for p, _ in row["record"]["_retrieved"]] for row in rows[:SOURCES_SHOWN]
            ],
        }


def _row_check(generated: str, row: dict) -> dict[str, Any]:
    """One RAG row: exact match / F1 against the gold answer and the lexical grounding share."""
    rec = row["record"]
    em, f1 = best_over_golds(generated, [str(rec.get("answer", ""))])
    tokens = normalize_answer(generated).split()
    shown = set(normalize_answer(" ".join(t for _, t in rec["_shown"])).split())
    grounded = sum(t in shown for t in tokens) / len(tokens) if tokens else None
    return {"question": rec.get("question"), "exact_match": em, "f1": f1,
            "faithfulness_lexical": grounded, "correct": f1 >= 0.5,
            "context": [t for _, t in rec["_shown"]]}
