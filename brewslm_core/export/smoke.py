"""Smoke checks: reload an exported artifact with an independent loader and compare its logits
with the source model's on fixed prompts.

Gates by storage type: F32/F16 within a tight max-abs tolerance; Q8_0 by correlation and top-1;
4/5-bit by correlation >= 0.99 and top-1 agreement (argmax may differ on near ties).
"""

from __future__ import annotations

from typing import Any

# Fixed prompts: plain text and the chat template's layout (what a served model sees).
PROMPTS: tuple[str, ...] = (
    "The capital of France is",
    "Give three tips for staying healthy.",
)
CHAT_PROMPT = "Translate 'good morning' into French."

# gate name -> thresholds (all must hold); "exact" is an unchanged-bytes reload
GATES: dict[str, dict[str, float]] = {
    "exact": {"max_abs_diff": 1e-4},
    "merge": {"max_abs_diff": 2e-3, "top1_agreement": 1.0},
    "merge_hidden": {"max_abs_diff": 2e-3},
    "f32": {"max_abs_diff": 1e-3},
    "f16": {"max_abs_diff": 0.1, "correlation": 0.9999},
    "q8_0": {"correlation": 0.999, "top1_agreement": 0.9},
    "4bit": {"correlation": 0.99, "top1_agreement": 0.9},
}
GATE_OF_QUANT = {"f32": "f32", "f16": "f16", "q8_0": "q8_0"}


def gate_for(quant: str) -> str:
    return GATE_OF_QUANT.get(quant, "4bit")


def prompt_texts(tokenizer: Any) -> list[str]:
    texts = list(PROMPTS)
    if getattr(tokenizer, "chat_template", None):
        texts.append(
            tokenizer.apply_chat_template(
                [{"role": "user", "content": CHAT_PROMPT}], tokenize=False, add_generation_prompt=True
            )
        )
    return texts


def logits(model: Any, ids: list[Any]) -> list[Any]:
    """Per-prompt logits [positions, vocab] in fp32 for already tokenized prompts."""
    import torch

    out = []
    with torch.no_grad():
        for x in ids:
            result = model(input_ids=x)
            out.append((result.logits if hasattr(result, "logits") else result.last_hidden_state)[0].float())
    return out


def compare(reference: list[Any], candidate: list[Any]) -> dict[str, float]:
    """max |diff|, Pearson correlation over every logit, and share of positions whose argmax agrees."""
    import torch

    ref = torch.cat([r.reshape(-1, r.shape[-1]) for r in reference])
    cand = torch.cat([c.reshape(-1, c.shape[-1]) for c in candidate])
    corr = torch.corrcoef(torch.stack([ref.flatten().double(), cand.flatten().double()]))[0, 1]
    return {
        "max_abs_diff": float((ref - cand).abs().max()),
        "correlation": float(corr),
        "top1_agreement": float((ref.argmax(-1) == cand.argmax(-1)).double().mean()),
        "positions": int(ref.shape[0]),
    }


def judge(metrics: dict[str, float], gate: str) -> tuple[bool, list[str]]:
    """(passed, failures) for ``metrics`` against the named gate."""
    failures = []
    for key, threshold in GATES[gate].items():
        value = metrics[key]
        ok = value <= threshold if key == "max_abs_diff" else value >= threshold
        if not ok:
            op = "<=" if key == "max_abs_diff" else ">="
            failures.append(f"{key} {value:.6g} not {op} {threshold:g}")
    return not failures, failures


def check(
    name: str,
    loader: str,
    reference: list[Any],
    candidate: list[Any],
    gate: str,
    **extra: Any,
) -> dict[str, Any]:
    """One smoke record: what was loaded how, the agreement figures, the gate and its verdict."""
    metrics = compare(reference, candidate)
    passed, failures = judge(metrics, gate)
    return {
        "artifact": name,
        "loader": loader,
        "gate": gate,
        "thresholds": GATES[gate],
        **metrics,
        "passed": passed,
        "failures": failures,
        **extra,
    }


def token_ids(tokenizer: Any, texts: list[str]) -> list[Any]:
    return [tokenizer(t, return_tensors="pt", add_special_tokens=False).input_ids for t in texts]
