"""Token lengths under the planned tokenizer, and the supervision audit.

The audit finds rows whose training signal would be lost at the planned max_length: the answer
span cut off (QA), tagged tokens or spans past the window (extraction), the target turn cut off
or pushed wholly past the window by a long prompt (generative), or no target at all. Generative
rows are rendered with the tokenizer's chat template, as a chat SFT run would see them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ..contracts.prepare import SupervisionAudit, TokenStats

EXAMPLES_KEPT = 5
Row = dict[str, Any]


def _chat(tokenizer: Any, messages: list[dict[str, str]], *, generation_prompt: bool) -> str:
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )
    # A base model without a chat template: a plain "role: content" transcript.
    text = "".join(f"{m['role']}: {m['content']}\n" for m in messages)
    return text + ("assistant: " if generation_prompt else "")


def _rag_prompt(record: dict[str, Any]) -> str:
    passages = "\n".join(f"{p.get('title', '')}: {p.get('text', '')}" for p in record["passages"])
    return f"Passages:\n{passages}\n\nQuestion: {record['question']}"


def generative_pairs(shape: str, record: dict[str, Any]) -> list[tuple[list, str]]:
    """(prompt messages, target text) pairs a generative handler would train on."""
    if shape in ("alpaca", "sharegpt", "openai_messages", "prompt_completion", "vision_language"):
        messages = [
            {"role": m.get("role", "user"), "content": str(m.get("content", ""))}
            for m in record["messages"]
        ]
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
        if last is None:
            return [(messages, "")]
        return [(messages[:last], messages[last]["content"])]
    if shape == "text":
        return [([], record["text"])]
    if shape == "seq2seq":
        return [([{"role": "user", "content": record["source"]}], record["target"])]
    if shape == "rag":
        return [([{"role": "user", "content": _rag_prompt(record)}], record["answer"])]
    if shape == "preference":
        return [(record["prompt"], record["chosen"]), (record["prompt"], record["rejected"])]
    if shape == "kto":
        return [(record["prompt"], record["completion"])]
    raise ValueError(f"shape {shape!r} is not generative")


class _Audit:
    def __init__(self, max_length: int) -> None:
        self.max_length = max_length
        self.by_reason: Counter[str] = Counter()
        self.affected = 0
        self.examples: list[dict[str, Any]] = []

    def row(self, split: str, row: Row, reasons: set[str]) -> None:
        if not reasons:
            return
        self.affected += 1
        for reason in sorted(reasons):
            self.by_reason[reason] += 1
        if len(self.examples) < EXAMPLES_KEPT:
            self.examples.append({"split": split, "import_id": row["import_id"],
                                  "row_index": row["row_index"], "reasons": sorted(reasons)})

    def result(self, rows_checked: int) -> SupervisionAudit:
        return SupervisionAudit(
            max_length=self.max_length,
            rows_checked=rows_checked,
            rows_affected=self.affected,
            by_reason=dict(sorted(self.by_reason.items())),
            examples=tuple(self.examples),
        )


def _lengths(tokenizer: Any, texts: list[str], **kwargs: Any) -> list[int]:
    if not texts:
        return []
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and set(kwargs) <= {"add_special_tokens"}:
        # A fast tokenizer's Rust backend, without the padding/truncation state it may carry:
        # the same ids, without building a Python BatchEncoding per row.
        backend = backend.__class__.from_str(backend.to_str())
        backend.no_truncation()
        backend.no_padding()
        add = kwargs.get("add_special_tokens", True)
        return [len(e.ids) for e in backend.encode_batch(texts, add_special_tokens=add)]
    encoded = tokenizer(texts, truncation=False, return_attention_mask=False,
                        return_token_type_ids=False, **kwargs)["input_ids"]
    return [len(ids) for ids in encoded]


def _covered_chars(tokenizer: Any, first: list[str], second: list[str] | None, max_length: int
                   ) -> tuple[list[int], list[int]]:
    """Per row: how many characters of the (second, else only) text survive truncation,
    and the untruncated token length."""
    kwargs: dict[str, Any] = {"return_offsets_mapping": True}
    if second is None:
        enc = tokenizer(first, truncation=True, max_length=max_length, **kwargs)
        seq_of_text = 0
        full = _lengths(tokenizer, first)
    else:
        enc = tokenizer(first, second, truncation="only_second", max_length=max_length, **kwargs)
        seq_of_text = 1
        full = _lengths(tokenizer, first, text_pair=second)
    covered = []
    for i in range(len(first)):
        ends = [end for (start, end), seq in zip(enc["offset_mapping"][i], enc.sequence_ids(i),
                                                 strict=True) if seq == seq_of_text]
        covered.append(max(ends, default=0))
    return covered, full


def _measure_label(tokenizer, rows, max_length, audit) -> list[int]:
    full = _lengths(tokenizer, [r["record"]["text"] for _, r in rows])
    for split, row in rows:
        reasons = set()
        if not str(row["record"].get("label", "")).strip():
            reasons.add("empty_target")
        if not row["record"]["text"].strip():
            reasons.add("empty_input")
        audit.row(split, row, reasons)
    return full


def _measure_qa(tokenizer, rows, max_length, audit) -> list[int]:
    questions = [r["record"]["question"] for _, r in rows]
    contexts = [r["record"]["context"] for _, r in rows]
    covered, full = _covered_chars(tokenizer, questions, contexts, max_length)
    for (split, row), chars in zip(rows, covered, strict=True):
        answers = row["record"]["answers"]
        reasons = set()
        if answers and all(a["start"] + len(a["text"]) > chars for a in answers):
            reasons.add("answer_beyond_max_length")
        if any(not a["text"].strip() for a in answers):
            reasons.add("empty_target")
        audit.row(split, row, reasons)
    return full


def _measure_tokens(tokenizer, rows, max_length, audit) -> list[int]:
    words = [r["record"]["tokens"] for _, r in rows]
    enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length)
    full = _lengths(tokenizer, words, is_split_into_words=True)
    for i, (split, row) in enumerate(rows):
        kept = {w for w in enc.word_ids(i) if w is not None}
        tags = row["record"]["tags"]
        lost = [t for w, t in enumerate(tags) if w not in kept and t != "O"]
        audit.row(split, row, {"tagged_tokens_beyond_max_length"} if lost else set())
    return full


def _measure_spans(tokenizer, rows, max_length, audit) -> list[int]:
    covered, full = _covered_chars(tokenizer, [r["record"]["text"] for _, r in rows], None,
                                   max_length)
    for (split, row), chars in zip(rows, covered, strict=True):
        lost = [s for s in row["record"]["spans"] if s["end"] > chars]
        audit.row(split, row, {"span_beyond_max_length"} if lost else set())
    return full


def _measure_generative(tokenizer, rows, max_length, audit) -> list[int]:
    prompts, fulls, owners = [], [], []
    for i, (_, row) in enumerate(rows):
        for messages, target in generative_pairs(row["shape"], row["record"]):
            if messages:
                prompt = _chat(tokenizer, messages, generation_prompt=True)
                whole = _chat(tokenizer, [*messages, {"role": "assistant", "content": target}],
                              generation_prompt=False)
            else:  # plain text: the whole text is the target
                prompt, whole = "", target
            prompts.append(prompt)
            fulls.append(whole)
            owners.append((i, target))
    # The chat template already holds the special tokens.
    prompt_len = _lengths(tokenizer, prompts, add_special_tokens=False)
    full_len = _lengths(tokenizer, fulls, add_special_tokens=False)
    longest = [0] * len(rows)
    reasons: list[set[str]] = [set() for _ in rows]
    for (i, target), p_len, f_len in zip(owners, prompt_len, full_len, strict=True):
        longest[i] = max(longest[i], f_len)
        if not target.strip():
            reasons[i].add("empty_target")
        elif p_len >= max_length:
            reasons[i].add("target_fully_masked")  # the prompt alone fills the window
        elif f_len > max_length:
            reasons[i].add("target_truncated")  # the target turn is cut off
    for (split, row), why in zip(rows, reasons, strict=True):
        audit.row(split, row, why)
    return longest


def _measure_audio(tokenizer, rows, max_length, audit) -> list[int]:
    text_tokenizer = getattr(tokenizer, "tokenizer", tokenizer)  # a processor wraps it
    full = _lengths(text_tokenizer, [r["record"]["text"] for _, r in rows])
    for (split, row), n in zip(rows, full, strict=True):
        reasons = set()
        if not row["record"]["text"].strip():
            reasons.add("empty_target")
        elif n > max_length:
            reasons.add("target_truncated")
        audit.row(split, row, reasons)
    return full


MEASURES = {
    "classification": _measure_label,
    "safety": _measure_label,
    "qa": _measure_qa,
    "token_classification": _measure_tokens,
    "span_extraction": _measure_spans,
    "audio_transcription": _measure_audio,
}


def measure(
    rows: list[tuple[str, Row]], profile: str, tokenizer: Any, tokenizer_name: str,
    max_length: int,
) -> tuple[TokenStats, SupervisionAudit]:
    """Token stats + supervision audit over (split, row) pairs of one task profile."""
    audit = _Audit(max_length)
    lengths: list[int] = []
    by_kind: dict[str, list[tuple[str, Row]]] = {}
    for split, row in rows:
        if profile == "structured_extraction":
            kind = row["shape"]
        elif profile in MEASURES:
            kind = profile
        else:
            kind = "generative"
        by_kind.setdefault(kind, []).append((split, row))
    for kind, group in sorted(by_kind.items()):
        fn = MEASURES.get(kind, _measure_generative)
        lengths += fn(tokenizer, group, max_length, audit)
    arr = np.asarray(lengths or [0])
    stats = TokenStats(
        tokenizer=tokenizer_name,
        rows=len(lengths),
        p50=int(np.percentile(arr, 50, method="nearest")),
        p95=int(np.percentile(arr, 95, method="nearest")),
        max=int(arr.max()),
        over_max_length=int((arr > max_length).sum()),
    )
    return stats, audit.result(len(rows))


def empty_target_audit(rows: list[tuple[str, Row]], profile: str, max_length: int
                       ) -> SupervisionAudit:
    """What can be audited without a tokenizer: rows with nothing to learn from."""
    from .profile import TARGET_FIELDS

    audit = _Audit(max_length)
    for split, row in rows:
        target = row["record"].get(TARGET_FIELDS[row["shape"]])
        if target in ("", [], None) or (isinstance(target, str) and not target.strip()):
            audit.row(split, row, {"empty_target"})
    return audit.result(len(rows))
