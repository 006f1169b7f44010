"""Detectors for instruction and chat data: alpaca, sharegpt, openai_messages, prompt_completion, text."""

from __future__ import annotations

from ..profile import SampleProfile, norm
from .base import (
    AUDIO_PARTS,
    BOT_ROLES,
    CHOSEN,
    DETECTORS,
    IMAGE_PARTS,
    INPUT,
    INSTRUCTION,
    OUTPUT,
    REJECTED,
    USER_ROLES,
    Detection,
    bool_field,
    content_parts,
    part_refs,
    pct,
    roles_of,
    turn_keys,
)


@DETECTORS.register("alpaca")
def detect_alpaca(prof: SampleProfile) -> Detection | None:
    ins = prof.find(INSTRUCTION, pred=lambda f: f.is_text)
    if ins is None:
        return None
    out = prof.find(OUTPUT, pred=lambda f: f.is_text and f.path != ins.path)
    inp = prof.find(INPUT, pred=lambda f: f.is_text or not f.values)
    fmap = {"instruction": ins.path}
    why = [f"{ins.path!r} holds instructions (avg {ins.avg_words:.0f} words)"]
    nested = None
    if out is None:  # self-instruct seed tasks: instances: [{input, output}]
        inst = prof.find(("instances", "examples"), pred=prof.list_of_dicts)
        if inst and all("output" in v[0] for v in inst.values):
            nested = inst.path
            fmap.update(input=f"{nested}.0.input", output=f"{nested}.0.output")
            why.append(f"input/output are nested in {nested!r} (first instance is used)")
    else:
        fmap["output"] = out.path
        if inp is not None and inp.path not in (ins.path, out.path):
            fmap["input"] = inp.path
            why.append(f"{inp.path!r} is the optional input ({pct(inp.fill)} filled)")
    if "output" not in fmap:
        return None
    exact = ins.name == "instruction" and (nested or norm(fmap["output"]) in ("output",
                                                                           "response"))
    conf = 0.95 if exact and not nested else 0.85 if exact else 0.7
    if ins.name in ("question", "prompt") and "input" not in fmap:
        conf = min(conf, 0.6)  # prompt/answer pairs are prompt_completion or QA first
    if ins.name != "instruction" and prof.find(("context",),
                                               pred=lambda f: f.is_text and f.avg_len > 300):
        conf = min(conf, 0.5)  # long contexts: reading comprehension, not instructions
    if prof.find(CHOSEN + REJECTED):
        conf = min(conf, 0.5)
    if ins.fill < 0.9:
        conf -= 0.2
        why.append(f"but only {pct(ins.fill)} of rows have it")
    system = prof.find(("system", "systemprompt"), pred=lambda f: f.is_text)
    if system:
        fmap["system"] = system.path
    history = prof.find(("history",), pred=lambda f: all(isinstance(v, list) for v in f.values))
    if history:
        fmap["history"] = history.path
        why.append(f"{history.path!r} holds earlier [user, assistant] turns")
    why.append(f"{fmap['output']!r} holds the responses")
    return Detection(conf, "; ".join(why), fmap)


def _chat(prof: SampleProfile, want: str) -> Detection | None:
    found = turn_keys(prof)
    if found is None:
        return None
    f, rk, ck = found
    roles = roles_of(f, rk)
    style = "sharegpt" if rk == "from" else "openai_messages"
    conf = 0.95 if style == want else 0.55
    why = [f"{f.path!r} is a list of turns keyed {rk!r}/{ck!r} with roles {sorted(roles)}"]
    if not roles & BOT_ROLES or not roles & USER_ROLES:
        conf -= 0.3
        why.append("but no user/assistant pair of roles was seen")
    if prof.find(CHOSEN) and prof.find(REJECTED):
        conf = min(conf, 0.5)
        why.append("chosen/rejected fields point to preference data instead")
    if prof.find(("label", "kto_tag", "desirable")):
        conf = min(conf, 0.55)
        why.append("a per-row label points to kto instead")
    if prof.find(("images", "image", "videos", "audios")):
        conf = min(conf, 0.55)
        why.append("media references point to vision_language or audio_transcript instead")
    parts = content_parts(f, ck)
    if part_refs(parts, IMAGE_PARTS | AUDIO_PARTS):
        conf = min(conf, 0.55)
        why.append("images/audio inside the content parts point to vision_language instead")
    elif parts:
        why.append(f"content is a list of parts ({sorted({str(p.get('type')) for p in parts})})")
    fmap = {"messages": f.path}
    tools = prof.find(("tools", "functions", "tooldefinitions"))
    if tools:
        fmap["tools"] = tools.path
        why.append(f"{tools.path!r} holds the tool definitions (kept with every record)")
    system = prof.find(("system",), pred=lambda s: s.is_text)
    if system:
        fmap["system"] = system.path
    return Detection(conf, "; ".join(why), fmap, {"role_key": rk, "content_key": ck})


@DETECTORS.register("sharegpt")
def detect_sharegpt(prof: SampleProfile) -> Detection | None:
    return _chat(prof, "sharegpt")


@DETECTORS.register("openai_messages")
def detect_openai_messages(prof: SampleProfile) -> Detection | None:
    return _chat(prof, "openai_messages")


@DETECTORS.register("prompt_completion")
def detect_prompt_completion(prof: SampleProfile) -> Detection | None:
    prompt = prof.find(("prompt", "query", "source", "question", "input"), pred=lambda f: f.is_text)
    if prompt is None:
        return None
    comp = prof.find(("completion", "response", "output", "answer", "target"),
                     pred=lambda f: f.is_text and f.path != prompt.path)
    if comp is None:
        return None
    exact = prompt.name == "prompt" and comp.name in ("completion", "response")
    conf = 0.9 if exact else 0.6
    flag = next((f for f in prof.fields.values() if f.path not in (prompt.path, comp.path)
                 and "." not in f.path and bool_field(prof, f)), None)
    if flag is not None:
        conf = min(conf, 0.6)
        why_flag = (f"; the rows also carry a true/false {flag.path!r}, which reads as kto "
                    "(unpaired feedback) first: both fit, kto ranks higher")
    else:
        why_flag = ""
    if prof.find(("instruction",)) or prof.find(CHOSEN):
        conf = min(conf, 0.45)
    if prof.find(("context", "passages", "contexts"), pred=lambda f: not f.is_text or f.avg_len > 300):
        conf = min(conf, 0.45)
    why = f"{prompt.path!r} -> {comp.path!r} read as a prompt and its completion" + why_flag
    if comp.name == "target" and prompt.name == "source":
        conf = min(conf, 0.5)
        why += "; source/target is a seq2seq pair first"
    return Detection(conf, why, {"prompt": prompt.path, "completion": comp.path})


@DETECTORS.register("text")
def detect_text(prof: SampleProfile) -> Detection | None:
    texts = [f for f in prof.text_fields(min_len=1) if f.common_prefix < 20]
    if not texts:
        return None
    best = texts[0]
    conf = 0.55 if best.avg_words >= 30 else 0.45 if best.avg_words >= 5 else 0.25
    if len(prof.fields) == 1:
        conf += 0.3  # a single text column: plain text, nothing else to learn from
    why = (f"{best.path!r} is the longest text field (avg {best.avg_words:.0f} words); plain text "
           "is the fallback when no task structure is found")
    return Detection(min(conf, 0.85), why, {"text": best.path})
