"""Talking to a deployed endpoint: the official ``openai`` client for generative models, a JSON
POST to ``/v1/classify`` for encoders; gold prompts judged against their expected outputs."""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

from ..contracts.deploy import DeploymentVersion, GoldCheck, SmokeResult
from .sources import GoldExample
from .store import now

API_KEY = "brewslm-local"  # servers started here need none; the client wants a value
GOLD_MAX_TOKENS = 16  # the gold answers are short; garbage from a drifted model costs no more
CHRF_PASS = 50.0
GEN_JUDGE = f"expected answer contained in the output (normalised) or sentence chrF >= {CHRF_PASS:g}"
CLS_JUDGE = "predicted label equals the gold label"


def openai_client(endpoint: str, timeout: float = 120.0) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=endpoint, api_key=API_KEY, timeout=timeout, max_retries=0)


def model_id(dep: DeploymentVersion) -> str:
    """The model name requests use: the LoRA module when one is served, else the served name."""
    return dep.adapter_name or dep.served_model_name


def chat(endpoint: str, model: str, messages: list[dict[str, str]], max_tokens: int) -> str:
    resp = openai_client(endpoint).chat.completions.create(
        model=model, messages=messages, max_tokens=max_tokens, temperature=0.0
    )
    return resp.choices[0].message.content or ""


def classify(endpoint: str, model: str, texts: list[str], timeout: float = 120.0) -> list[dict[str, Any]]:
    body = json.dumps({"model": model, "input": texts}).encode()
    req = urllib.request.Request(
        endpoint.rstrip("/") + "/classify", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the deployment's endpoint
        return json.loads(resp.read().decode())["data"]


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s]", " ", text.lower())).strip()


def judge_generation(output: str, expected: str) -> bool:
    if _norm(expected) and _norm(expected) in _norm(output):
        return True
    from sacrebleu.metrics import CHRF

    return CHRF().sentence_score(output, [expected]).score >= CHRF_PASS


def gold_check(dep: DeploymentVersion, source: str, examples: list[GoldExample]) -> GoldCheck:
    """Run every gold example against the live endpoint (requests may raise; callers record it)."""
    assert dep.endpoint is not None
    rows = []
    if dep.task_kind == "encoder":
        preds = classify(dep.endpoint, model_id(dep), [ex.text or "" for ex in examples]) if examples else []
        for ex, pred in zip(examples, preds, strict=True):
            rows.append(
                {
                    "id": ex.id,
                    "expected": ex.expected,
                    "output": str(pred["label"]),
                    "passed": str(pred["label"]) == ex.expected,
                }
            )
        judge = CLS_JUDGE
    else:
        for ex in examples:
            out = chat(dep.endpoint, model_id(dep), list(ex.messages), GOLD_MAX_TOKENS)
            rows.append(
                {
                    "id": ex.id,
                    "expected": ex.expected,
                    "output": out,
                    "passed": judge_generation(out, ex.expected),
                }
            )
        judge = GEN_JUDGE
    passed = sum(r["passed"] for r in rows)
    return GoldCheck(
        source=source,
        judge=judge,
        n=len(rows),
        passed=passed,
        pass_rate=(passed / len(rows)) if rows else None,
        examples=tuple(rows),
        checked_at=now(),
    )


def smoke(dep: DeploymentVersion, source: str, examples: list[GoldExample]) -> SmokeResult:
    """A real 1-token generation (or one classification), then the gold prompts."""
    model = model_id(dep)
    if dep.endpoint is None:
        return SmokeResult(
            ok=False,
            model=model,
            one_token=None,
            gold=None,
            checked_at=now(),
            error=f"{dep.deploy_id} ({dep.target}) has no live endpoint to check",
        )
    try:
        if dep.task_kind == "encoder":
            one = str(classify(dep.endpoint, model, ["hello"])[0]["label"])
        else:
            resp = openai_client(dep.endpoint).chat.completions.create(
                model=model, messages=[{"role": "user", "content": "Say hi."}], max_tokens=1, temperature=0.0
            )
            one = resp.choices[0].message.content
            if not one or resp.usage is None or resp.usage.completion_tokens != 1:
                return SmokeResult(
                    ok=False,
                    model=model,
                    one_token=one,
                    gold=None,
                    checked_at=now(),
                    error=f"expected exactly one generated token, got {resp.usage}",
                )
        gold = gold_check(dep, source, examples)
    except Exception as exc:  # noqa: BLE001 - any failure to talk to the endpoint is a smoke failure
        return SmokeResult(
            ok=False,
            model=model,
            one_token=None,
            gold=None,
            checked_at=now(),
            error=f"{type(exc).__name__}: {exc}",
        )
    return SmokeResult(ok=True, model=model, one_token=one, error=None, gold=gold, checked_at=now())
