"""Optional LLM-as-judge through any OpenAI-compatible endpoint (the official ``openai`` client).

The judge grades each example 0..1: correctness against the reference, and for RAG also
faithfulness to the passages the model was shown. An endpoint that cannot be reached (or no
``openai`` package) means no judge metrics: the report says so and an ``eval_judge_unavailable``
warning is recorded; the deterministic metrics stand on their own.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import Any

OPENAI_INSTALL = "pip install 'brewslm[judge]'  (the official openai client)"
_SCORE = re.compile(r"([01](?:\.\d+)?)")

CORRECTNESS = (
    "You grade answers. Reference answer:\n{gold}\n\nModel answer:\n{prediction}\n\n"
    "Is the model answer correct with respect to the reference? Reply with JSON only: "
    '{{"score": <a number from 0 to 1>}}'
)
FAITHFULNESS = (
    "You check whether an answer is supported by the context it was given.\nContext:\n{context}\n\n"
    "Answer:\n{prediction}\n\nIs every claim of the answer supported by the context? Reply with JSON "
    'only: {{"score": <a number from 0 to 1>}}'
)


class JudgeUnavailable(RuntimeError):
    """The judge endpoint (or the openai client) is not there."""


def _score(text: str) -> float | None:
    try:
        value = json.loads(text[text.index("{") : text.rindex("}") + 1]).get("score")
        return min(1.0, max(0.0, float(value)))
    except (ValueError, AttributeError, TypeError):
        found = _SCORE.search(text)
        return float(found.group(1)) if found else None


def client_for(settings: dict[str, Any]) -> Any:
    try:
        from openai import OpenAI
    except ImportError as exc:
        raise JudgeUnavailable(f"the openai package is not installed: {OPENAI_INSTALL}") from exc
    key = os.environ.get(str(settings.get("api_key_env") or ""), "") or "not-needed"
    return OpenAI(base_url=settings["base_url"], api_key=key, timeout=float(settings.get("timeout", 30)),
                  max_retries=0)


def ask(client: Any, model: str, prompt: str) -> float | None:
    import openai

    try:
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": prompt}], max_tokens=16, temperature=0.0
        )
    except (openai.APIConnectionError, openai.APITimeoutError) as exc:
        raise JudgeUnavailable(f"{type(exc).__name__}: {exc}") from exc
    except openai.APIStatusError as exc:  # reachable, but it refused (no such model, bad key …)
        raise JudgeUnavailable(f"the endpoint answered {exc.status_code}: {exc.message}") from exc
    return _score(reply.choices[0].message.content or "")


def judge_examples(settings: dict[str, Any], examples: Sequence[dict[str, Any]], faithfulness: bool
                   ) -> dict[str, Any]:
    """Judge metrics (``judge_correctness``, ``judge_faithfulness``) and per-example grades.

    Raises JudgeUnavailable at the first call that cannot reach the endpoint.
    """
    client = client_for(settings)
    model = settings["model"]
    limit = int(settings.get("max_rows") or len(examples))
    graded, correct, faithful = [], [], []
    for e in list(examples)[:limit]:
        grade: dict[str, Any] = {"index": e["index"]}
        prompt = CORRECTNESS.format(gold=e.get("gold", ""), prediction=e.get("prediction", ""))
        value = ask(client, model, prompt)
        grade["judge_correctness"] = value
        if value is not None:
            correct.append(value)
        if faithfulness and e.get("context"):
            value = ask(client, model, FAITHFULNESS.format(context="\n".join(e["context"]),
                                                           prediction=e.get("prediction", "")))
            grade["judge_faithfulness"] = value
            if value is not None:
                faithful.append(value)
        graded.append(grade)
    metrics: dict[str, Any] = {"judge_n": len(graded),
                               "judge_correctness": sum(correct) / len(correct) if correct else None}
    if faithfulness:
        metrics["judge_faithfulness"] = sum(faithful) / len(faithful) if faithful else None
    return {"metrics": metrics, "graded": graded}
