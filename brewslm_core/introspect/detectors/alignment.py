"""Detectors for preference data: paired (preference) and unpaired (kto)."""

from __future__ import annotations

from typing import Any

from ..profile import SampleProfile
from .base import (
    CHOSEN,
    DETECTORS,
    REJECTED,
    Detection,
    turn_keys,
)


@DETECTORS.register("preference")
def detect_preference(prof: SampleProfile) -> Detection | None:
    chosen, rejected = prof.find(CHOSEN), prof.find(REJECTED)
    if chosen is None or rejected is None:
        return None
    fmap = {"chosen": chosen.path, "rejected": rejected.path}
    options: dict[str, Any] = {}
    why = [f"{chosen.path!r} and {rejected.path!r} are paired responses"]
    conf = 0.95
    prompt = prof.find(("prompt", "question", "instruction", "query", "input"),
                       pred=lambda f: f.is_text)
    turns = turn_keys(prof)
    if prompt:
        fmap["prompt"] = prompt.path
        why.append(f"{prompt.path!r} is the prompt")
        if chosen.name == "responsej":
            why.append("response_j is the preferred answer (stack-exchange paired layout)")
    elif turns:
        f, rk, ck = turns
        fmap["prompt"] = f.path
        options = {"role_key": rk, "content_key": ck}
        why.append(f"{f.path!r} holds the prompt turns")
    if chosen.share("dict") == 1.0:
        rk = "from" if all("from" in v for v in chosen.values) else "role"
        ck = "value" if rk == "from" else "content"
        options.update(role_key=rk, content_key=ck)
        why.append("responses are single message objects")
    elif "prompt" not in fmap:
        if chosen.is_text and all(s.lstrip("\n").startswith("Human:") for s in chosen.strings):
            why.append("no prompt field: both sides are Human/Assistant transcripts that share "
                       "the prompt, which is split off the last Assistant turn")
            conf = 0.9
        else:
            conf = 0.6
            why.append("no prompt field found")
    return Detection(conf, "; ".join(why), fmap, options)


@DETECTORS.register("kto")
def detect_kto(prof: SampleProfile) -> Detection | None:
    label = prof.find(("label", "kto_tag", "desirable", "is_desirable", "thumbs_up"),
                      pred=lambda f: f.share("bool") == 1.0
                      or {str(v).lower() for v in f.values} <= {"true", "false"})
    if label is None:
        return None
    turns = turn_keys(prof)
    comp = prof.find(("completion", "response", "output"), pred=lambda f: f.is_text)
    prompt = prof.find(("prompt", "instruction", "query"), pred=lambda f: f.is_text)
    fmap = {"label": label.path}
    options: dict[str, Any] = {}
    if comp and prompt:
        fmap.update(prompt=prompt.path, completion=comp.path)
        why = (f"{prompt.path!r} -> {comp.path!r} with a true/false {label.path!r}: unpaired "
               "feedback (the same rows also fit prompt_completion and a text/label sheet; kto "
               "ranks first because the label says whether the completion is desirable)")
    elif turns:
        f, rk, ck = turns
        fmap["messages"] = f.path
        options = {"role_key": rk, "content_key": ck}
        why = (f"conversation {f.path!r} with a boolean {label.path!r}: unpaired feedback on the "
               "last assistant turn")
    else:
        return None
    return Detection(0.92, why, fmap, options)
