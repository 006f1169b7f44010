"""Detectors for media: vision_language and audio_transcript."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..profile import AUDIO_EXTS, IMAGE_EXTS, SampleProfile
from .base import (
    DETECTORS,
    IMAGE_PARTS,
    Detection,
    content_parts,
    is_file,
    part_refs,
    turn_keys,
)


def _image_template(prof: SampleProfile) -> tuple[str, str] | None:
    """A short id column whose values name image files beside the source: images/{col}.png."""
    base = prof.base_dir
    if base is None or not prof.rows:
        return None
    folders = [p for p in (base, base / "images", base / "imgs", base / "image", base / "img")
               if p.is_dir()]
    for f in prof.fields.values():
        if not f.scalar or "." in f.path or not all(
                re.fullmatch(r"[\w\-]{1,64}", str(v)) for v in f.values):
            continue  # ids only: no spaces, no separators, short
        for folder in folders:
            for ext in IMAGE_EXTS:
                hits = sum(is_file(folder / f"{v}{ext}") for v in f.values)
                if f.values and hits == len(f.values):
                    rel = "" if folder == base else f"{folder.name}/"
                    return f"{rel}{{{f.path}}}{ext}", f.path
    return None




def _audio_template(prof: SampleProfile) -> tuple[str, str] | None:
    """An id column whose values name audio files beside the source: wavs/{col}.wav."""
    base = prof.base_dir
    if base is None or not prof.rows:
        return None
    folders = [p for p in (base, base / "wavs", base / "audio", base / "clips", base / "wav")
               if p.is_dir()]
    for f in prof.fields.values():
        if not f.scalar or "." in f.path or not all(
                re.fullmatch(r"[\w\-.]{1,64}", str(v)) for v in f.values):
            continue
        for folder in folders:
            for ext in AUDIO_EXTS:
                if all(is_file(folder / f"{v}{ext}") for v in f.values):
                    rel = "" if folder == base else f"{folder.name}/"
                    return f"{rel}{{{f.path}}}{ext}", f.path
    return None


@DETECTORS.register("vision_language")
def detect_vision_language(prof: SampleProfile) -> Detection | None:
    images = prof.find(("images", "image", "image_path", "imagepath", "img", "image_file",
                        "filepath", "path", "file"),
                       pred=lambda f: f.ends_with(IMAGE_EXTS) > 0.8 or any(
                           isinstance(v, list) and v and all(
                               isinstance(x, str) and x.lower().endswith(IMAGE_EXTS) for x in v)
                           for v in f.values))
    template = None if images else _image_template(prof)
    turns = turn_keys(prof)
    in_parts = part_refs(content_parts(turns[0], turns[2]), IMAGE_PARTS) if turns else []
    if images is None and template is None and not in_parts:
        return None
    fmap: dict[str, str] = {}
    options: dict[str, Any] = {}
    why = []
    if images is None and template is None:
        base = prof.base_dir or Path.cwd()
        exist = sum(is_file(base / r) or is_file(Path(r)) for r in in_parts)
        why.append(f"the content parts of {turns[0].path!r} reference images; "
                   f"{exist}/{len(in_parts)} sampled files exist")
        conf = 0.7 + 0.25 * exist / len(in_parts)
    elif images:
        fmap["images"] = images.path
        refs = [x for v in images.values for x in (v if isinstance(v, list) else [v])]
        base = prof.base_dir or Path.cwd()
        exist = sum(is_file(base / str(r)) or is_file(Path(str(r))) for r in refs)
        why.append(f"{images.path!r} references images; {exist}/{len(refs)} sampled files exist")
        conf = 0.7 + 0.25 * exist / max(1, len(refs))
    else:
        options["image_template"], col = template
        why.append(f"every sampled {col!r} names an image file: {options['image_template']}")
        conf = 0.9
    if turns:
        f, rk, ck = turns
        fmap["messages"] = f.path
        options.update(role_key=rk, content_key=ck)
        why.append(f"{f.path!r} holds the conversation")
    else:
        texts = [t for t in prof.text_fields(min_len=1) if t.path not in fmap.values()]
        question = prof.find(("question", "query", "prompt", "instruction"),
                             pred=lambda t: t in texts)
        if question is None:
            asks = [t for t in texts if sum(s.rstrip().endswith("?") for s in t.strings)
                    >= 0.5 * len(t.strings)]
            question = asks[0] if asks else None
        answer = prof.find(("answer", "caption", "response", "output", "text"),
                           pred=lambda t: t in texts and t is not question)
        if answer is None:
            rest = [t for t in texts if t is not question]
            answer = rest[0] if rest else None
        if answer is None:
            return None
        if question is None:
            conf -= 0.25
            why.append(f"no question found; {answer.path!r} is read as the caption")
            question_path = None
        else:
            question_path = question.path
            why.append(f"{question.path!r} asks, {answer.path!r} answers")
        if question_path:
            fmap["question"] = question_path
        else:
            options["default_question"] = "Describe the image."
        fmap["answer"] = answer.path
    if "question" not in fmap and "messages" not in fmap:
        return None
    return Detection(min(conf, 0.95), "; ".join(why), fmap, options)


DIGIT_WORDS = {str(i): w for i, w in enumerate(
    "zero one two three four five six seven eight nine".split())}


@DETECTORS.register("audio_transcript")
def detect_audio_transcript(prof: SampleProfile) -> Detection | None:
    audio = prof.find(("audio", "path", "file", "audio_path", "filepath", "filename", "wav",
                       "audiofilepath", "wavpath", "audiofile"),
                      pred=lambda f: f.ends_with(AUDIO_EXTS) > 0.8)
    listed = prof.find(("audios", "audio", "audio_paths"), pred=lambda f: bool(f.values) and all(
        isinstance(v, list) and len(v) == 1 and isinstance(v[0], str)
        and v[0].lower().endswith(AUDIO_EXTS) for v in f.values))
    turns = turn_keys(prof)
    if audio is None and listed is not None and turns is not None:
        # LLaMA-Factory audio layout: audios: [one file] beside a chat whose reply transcribes it
        base = prof.base_dir or Path.cwd()
        exist = sum(is_file(base / v[0]) or is_file(Path(v[0])) for v in listed.values)
        why = (f"{listed.path!r} holds one audio file per row beside the conversation "
               f"{turns[0].path!r}; the assistant's reply is the transcript; "
               f"{exist}/{len(listed.values)} sampled files exist")
        return Detection(0.7 + 0.2 * exist / len(listed.values), why,
                         {"audio": f"{listed.path}.0", "messages": turns[0].path},
                         {"role_key": turns[1], "content_key": turns[2]})
    media = prof.find(("media",), pred=lambda f: {str(v) for v in f.values} == {"audio"})
    if audio is None and media is None:
        named = _audio_template(prof)
        if named is None:
            return None
        template, col = named
        texts = [f for f in prof.text_fields(min_len=2) if f.path != col]
        if not texts:
            return None
        # LJSpeech: id|raw|normalised: the last text column is the normalised transcript.
        text = max(texts, key=lambda f: list(prof.fields).index(f.path))
        why = (f"every sampled {col!r} names an audio file: {template}; {text.path!r} is the "
               "transcript (the last text column: LJSpeech's normalised one)")
        return Detection(0.85, why, {"text": text.path}, {"audio_template": template})
    if audio is None:
        if media is None:
            return None
        audio = prof.find(("path",))
        if audio is None:
            return None
    transcript = prof.find(("text", "transcript", "transcription", "sentence", "normalized_text",
                            "caption", "wrd", "words", "trans", "utterance"),
                           pred=lambda f: f.is_text)
    why = [f"{audio.path!r} points to audio files"]
    if transcript:
        return Detection(0.92, "; ".join(why + [f"{transcript.path!r} is the transcript"]),
                         {"audio": audio.path, "text": transcript.path})
    label = prof.find(("label", "class", "category"), pred=lambda f: f.scalar)
    if label is not None:
        values = {str(v) for v in label.values}
        options = {"text_map": DIGIT_WORDS} if values <= set(DIGIT_WORDS) else {}
        why.append(f"no transcript field: {label.path!r} (from the file or folder name) is used "
                   "as the transcript; check it")
        if options:
            why.append("its values are single digits, spoken as their English words")
        return Detection(0.75, "; ".join(why), {"audio": audio.path, "text": label.path}, options)
    names = [Path(str(v)).name for v in audio.values]
    heads = [n.split("_")[0] for n in names if "_" in n]
    options: dict[str, Any] = {}
    if heads and len(heads) == len(names):
        options["text_regex"] = r"^([^_]+)_"
        why.append("no transcript field: the text is taken from the file name before the first "
                   "'_' — check it")
        if all(h in DIGIT_WORDS for h in heads):
            options["text_map"] = DIGIT_WORDS
            why.append("the names start with a single digit, spoken as its English word")
        return Detection(0.75, "; ".join(why), {"audio": audio.path}, options)
    why.append("no transcript field and no pattern in the file names: map one with --field text=…")
    return Detection(0.4, "; ".join(why), {"audio": audio.path})
