"""The clean stage end to end on real rows (spam, banking77, SQuAD) committed through the store."""

from __future__ import annotations

import csv
import json
import random
import time
from pathlib import Path

import pytest
from test_clean_pii import banking_texts, make_value, plant, sms, squad_contexts

from brewslm_core import tasks
from brewslm_core.clean import (
    CleanBlocked,
    CleanConfig,
    CleanConfigError,
    clean,
    current_report,
    require_current,
    start_clean,
)
from brewslm_core.clean.text import normalise
from brewslm_core.mapping import store
from brewslm_core.mapping.shapes import task_profile, text_hash

NO_NORM = {"unicode_nfkc": False, "whitespace": False, "strip_html": False}


def commit(project, shape: str, records: list[dict], import_id: str = "imp1") -> None:
    rows = [
        {"import_id": import_id, "row_index": i, "shape": shape, "task_profile": task_profile(shape),
         "config_id": "test", "text_hash": text_hash(shape, rec), "record": rec}
        for i, rec in enumerate(records)
    ]
    store.append_commit(project, rows, {"import_id": import_id})


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def metadata(project) -> list[dict]:
    return read_jsonl(project.cleaned_dir / "metadata.jsonl")


# ---- duplicates --------------------------------------------------------------------------
def test_exact_and_near_duplicates_planted_in_real_rows(project, shared_data):
    base = [{"text": t, "label": c} for t, c in zip(
        banking_texts(shared_data)[:300], ["banking"] * 300, strict=False)]
    contexts = squad_contexts(shared_data)[:20]
    base += [{"text": c, "label": "wiki"} for c in contexts]
    rng = random.Random(5)
    planted = {}  # row index of the copy -> (kind, row index of the original)
    records = list(base)
    for i in rng.sample(range(300), 10):  # exact: case and spacing differ only
        planted[len(records)] = ("exact_duplicate", i)
        records.append({"text": "  " + base[i]["text"].upper().replace(" ", "   "), "label": "x"})
    for j in range(10):  # near: one word of a Wikipedia paragraph changed
        words = contexts[j].split(" ")
        k = rng.randrange(len(words))
        words[k] = "changed" if words[k] != "changed" else "altered"
        planted[len(records)] = ("near_duplicate", 300 + j)
        records.append({"text": " ".join(words), "label": "wiki"})
    commit(project, "classification", records)

    report = clean(project, CleanConfig(pii=False, chunk=False))
    metas = metadata(project)
    assert len(metas) == report.input_rows == len(records)
    for copy, (kind, orig) in planted.items():
        assert metas[copy]["removed_reason"] == kind, (copy, metas[copy])
        assert metas[copy]["duplicate_of"] == f"imp1:{orig}"
        assert metas[orig]["kept"]
    assert report.removed_by_reason["exact_duplicate"] >= 10
    assert report.removed_by_reason["near_duplicate"] >= 10
    # Beyond the planted copies, the real banking queries hold only a few near-twins.
    extra = [m for i, m in enumerate(metas) if not m["kept"] and i not in planted]
    assert len(extra) <= 5, extra
    kept = read_jsonl(project.cleaned_dir / "rows.jsonl")
    assert len(kept) == report.kept_rows == len(records) - report.removed_rows


# ---- PII policies ------------------------------------------------------------------------
def _pii_records(texts: list[str], seed: int = 3) -> tuple[list[dict], list[list[tuple]]]:
    rng = random.Random(seed)
    kinds = ["email", "phone", "credit_card", "iban", "ip_address"]
    records, spans = [], []
    for i, text in enumerate(texts):
        if i % 2:
            records.append({"text": text, "label": "0"})
            spans.append([])
            continue
        kind = kinds[(i // 2) % len(kinds)]
        value = make_value(kind, rng)
        new, start = plant(text, value, rng)
        records.append({"text": new, "label": "0"})
        spans.append([(kind, start, start + len(value))])
    return records, spans


def test_mask_policy_masks_exactly_the_planted_spans(project, shared_data):
    texts = banking_texts(shared_data)[:200]
    records, spans = _pii_records(texts)
    commit(project, "classification", records)
    report = clean(project, CleanConfig(pii_policy="mask", exact_dedup=False, near_dup=False,
                                        chunk=False, quality=False, **NO_NORM))
    rows = read_jsonl(project.cleaned_dir / "rows.jsonl")
    metas = metadata(project)
    assert len(rows) == 200
    for rec, sp, row, meta in zip(records, spans, rows, metas, strict=True):
        expected = rec["text"]
        for kind, a, b in sorted(sp, key=lambda s: -s[1]):
            expected = expected[:a] + f"[{kind.upper()}]" + expected[b:]
        assert row["record"]["text"] == expected
        assert row["record"]["label"] == "0"  # labels are never touched
        assert [(f["type"], f["start"], f["end"]) for f in meta["pii"]] == sp
        assert all(f["field"] == "text" for f in meta["pii"])
        assert row["clean"]["pii"] == sorted({k for k, _, _ in sp})
        assert row["text_hash"] == text_hash("classification", row["record"])
    assert sum(report.pii_by_type.values()) == 100
    assert report.changed_by_step["pii_mask"] == 100


def test_drop_policy_removes_rows_with_pii(project, shared_data):
    records, spans = _pii_records(banking_texts(shared_data)[:60])
    commit(project, "classification", records)
    report = clean(project, CleanConfig(pii_policy="drop", chunk=False))
    assert report.removed_by_reason["pii"] == 30
    kept = read_jsonl(project.cleaned_dir / "rows.jsonl")
    assert all(not r["clean"]["pii"] for r in kept)


def test_block_policy_blocks_and_emits_event(project, shared_data):
    records, _ = _pii_records(banking_texts(shared_data)[:20])
    commit(project, "classification", records)
    (project.cleaned_dir / "rows.jsonl").write_text("stale\n")  # must not survive a block
    report = clean(project, CleanConfig(pii_policy="block", chunk=False))
    assert report.blocked and report.kept_rows == 0
    assert not (project.cleaned_dir / "rows.jsonl").exists()
    assert not (project.cleaned_dir / "chunks.jsonl").exists()
    assert len(metadata(project)) == 20  # the findings stay reviewable
    events = [project.events.get(i) for i in report.event_ids]
    assert [(e.stage, e.severity, e.reason_code) for e in events] == [
        ("cleaning", "error", "cleaning_pii_block")
    ]
    assert events[0].payload["pii_docs"] == 10
    with pytest.raises(CleanBlocked, match="pii_policy='mask'"):
        require_current(project)


# ---- quality and outliers ----------------------------------------------------------------
JUNK = [
    "$$$ ### %%% &&& *** @@@ !!! ??? ~~~ ^^^",
    "1234 5678 9012 3456 7890 1234 5678 9012",
    "buy now buy now buy now buy now buy now buy now buy now buy now buy now",
    "",
    "=====================================",
]


def _with_junk(texts: list[str], n_junk: int) -> list[dict]:
    records = [{"text": t, "label": "ham"} for t in texts]
    for i in range(n_junk):
        # Distinct junk rows (dedup must not hide them), interleaved with the real ones.
        junk = JUNK[i % len(JUNK)]
        records.insert(i * 7, {"text": f"{junk} {'#' * (i + 1)}" if junk else "", "label": "ham"})
    return records


def test_outliers_removed_under_the_cap(project, shared_data):
    ham = [t for label, t in sms(shared_data) if label == "ham"][:200]
    commit(project, "classification", _with_junk(ham, 5))
    report = clean(project, CleanConfig(pii=False, chunk=False, near_dup=False, exact_dedup=False))
    assert report.outliers["flagged"] >= 5 and not report.outliers["threshold_exceeded"]
    metas = metadata(project)
    junk_rows = [m for m in metas if m["n_chars"] == 0 or m["quality"]["score"] < 0.5]
    assert {m["removed_reason"] for m in junk_rows} == {"low_quality"}
    # The formula is documented: the product of the five components.
    for m in metas[:50]:
        prod = 1.0
        for v in m["quality"]["components"].values():
            prod *= v
        assert m["quality"]["score"] == pytest.approx(prod, abs=1e-3)
    assert report.outliers["removed"] == report.removed_by_reason["low_quality"] <= 0.05 * 205


def test_outlier_cap_exceeded_removes_nothing_and_warns(project, shared_data):
    ham = [t for label, t in sms(shared_data) if label == "ham"][:100]
    commit(project, "classification", _with_junk(ham, 20))
    report = clean(project, CleanConfig(pii=False, chunk=False, max_outlier_fraction=0.05,
                                        exact_dedup=False, near_dup=False))
    assert report.outliers["threshold_exceeded"] is True
    assert report.outliers["flagged"] >= 20 and report.outliers["removed"] == 0
    assert "low_quality" not in report.removed_by_reason
    events = [project.events.get(i) for i in report.event_ids]
    assert ("warning", "cleaning_outlier_threshold_exceeded") in [
        (e.severity, e.reason_code) for e in events
    ]
    assert events[-1].severity == "info" and events[-1].stage == "cleaning"


# ---- normalisation on real markup ---------------------------------------------------------
def test_entities_and_markup_on_real_rows(shared_data):
    with open(shared_data / "safety" / "davidson_hate_offensive_labeled_data.csv",
              encoding="utf-8", newline="") as fh:
        tweets = [row["tweet"] for row in csv.DictReader(fh)]
    emoji = next(t for t in tweets if "&#128514;" in t)
    out, steps = normalise(emoji)
    assert "😂" in out and "&#" not in out and "html" in steps
    amp = next(t for t in tweets if "&amp;" in t)
    assert "&amp;" not in normalise(amp)[0]
    sms_text = next(t for _, t in sms(shared_data) if "&lt;#&gt;" in t)
    assert "<#>" in normalise(sms_text)[0]  # entity decoded, and "<#>" is not a tag
    assert normalise("<p>Hi&nbsp;<b>there</b></p>\r\n\r\n\r\nbye  <image>")[0] == "Hi there\n\nbye <image>"
    assert normalise("ﬁle ＡＢＣ\u200b")[0] == "file ABC"
    assert normalise("AT&T &nothing")[0] == "AT&T &nothing"  # no entity without ";"


def test_language_guess_on_real_text(shared_data):
    from brewslm_core.clean.quality import guess_language

    line = (shared_data / "seq2seq" / "tatoeba_manythings_hin-eng.txt").read_text("utf-8").splitlines()[200]
    english, hindi, _ = line.split("\t")
    assert guess_language(hindi) == (None, "DEVANAGARI")  # script known, language not claimed
    para = squad_contexts(shared_data)[0]
    assert guess_language(para) == ("en", "LATIN")
    assert guess_language("Je ne sais pas si vous avez le temps pour un café") == ("fr", "LATIN")
    assert guess_language("ok") == (None, "LATIN")


# ---- fields with offsets -----------------------------------------------------------------
def _squad_rows(data: Path, n: int = 30) -> list[dict]:
    doc = json.loads((data / "qa_squad" / "squad_v2_dev_Normans_subset.json").read_text("utf-8"))
    out = []
    for art in doc["data"]:
        for para in art["paragraphs"]:
            for qa in para["qas"]:
                answers = [{"text": a["text"], "start": a["answer_start"]} for a in qa["answers"][:1]]
                out.append({"question": qa["question"], "context": para["context"], "answers": answers})
    return out[:n]


def _noisy(rec: dict, rng: random.Random, email: str) -> dict:
    """Add markup, entities, double spaces and an email before the answer; keep offsets right."""
    ctx, answers = rec["context"], rec["answers"]
    cut = answers[0]["start"] if answers else len(ctx) // 2
    cut = ctx.rfind(" ", 0, cut) + 1 if ctx.rfind(" ", 0, cut) > 0 else 0
    noise = rng.choice(["<b>Note</b>  &amp;  ", "write to  " + email + " ,  ", "x&#233;  <br> "])
    new_ctx = ctx[:cut] + noise + ctx[cut:]
    shift = len(noise)
    new_answers = [{"text": a["text"], "start": a["start"] + shift if a["start"] >= cut else a["start"]}
                   for a in answers]
    assert all(new_ctx[a["start"]:a["start"] + len(a["text"])] == a["text"] for a in new_answers)
    return {**rec, "context": new_ctx, "answers": new_answers}


@pytest.mark.parametrize("policy", ["report", "mask"])
def test_extractive_qa_offsets_are_remapped_never_wrong(project, shared_data, policy):
    rng = random.Random(2)
    records = [_noisy(r, rng, f"user{i}@example.com") for i, r in enumerate(_squad_rows(shared_data))]
    # An answer glued to a double space: the whitespace edit crosses its offset.
    ctx = "The  answer is  here."
    records.append({"question": "What?", "context": ctx, "answers": [{"text": " here", "start": 15}]})
    commit(project, "extractive_qa", records)
    report = clean(project, CleanConfig(pii_policy=policy, exact_dedup=False, near_dup=False,
                                        chunk=False, quality=False))
    rows = read_jsonl(project.cleaned_dir / "rows.jsonl")
    assert len(rows) == len(records)
    for row, src in zip(rows, records, strict=True):
        rec = row["record"]
        for a, orig in zip(rec["answers"], src["answers"], strict=True):
            assert rec["context"][a["start"]:a["start"] + len(a["text"])] == a["text"]
            assert a["text"] == normalise(orig["text"], strip_ends=False)[0] or a == orig
        assert "<b>" not in rec["context"] or rec == src
        if policy == "mask":
            assert "@example.com" not in rec["context"]
    assert report.offsets["remapped"] >= len(records) - 1
    assert report.offsets["kept_unedited"] >= 1
    assert rows[-1]["record"] == records[-1]


def test_span_extraction_and_tokens_keep_alignment(project):
    text = "Book  a table for <b>Anna</b> at 7pm, mail anna@example.com please"
    start = text.index("Anna")
    recs = [
        {"text": text, "spans": [{"label": "first_name", "start": start, "end": start + 4},
                                 {"label": "time", "start": text.index("7pm"),
                                  "end": text.index("7pm") + 3}]},
    ]
    commit(project, "span_extraction", recs, "spans")
    tok = {"tokens": ["Mail", "anna@example.com", "about", "ＮＹＣ", "\u200b"],
           "tags": ["O", "B-email", "O", "B-location", "O"]}
    commit(project, "token_classification", [tok], "toks")
    clean(project, CleanConfig(pii_policy="mask", chunk=False, quality=False))
    rows = {r["import_id"]: r["record"] for r in read_jsonl(project.cleaned_dir / "rows.jsonl")}
    span_rec = rows["spans"]
    assert span_rec["text"] == "Book a table for Anna at 7pm, mail [EMAIL] please"
    got = {s["label"]: span_rec["text"][s["start"]:s["end"]] for s in span_rec["spans"]}
    assert got == {"first_name": "Anna", "time": "7pm"}
    assert rows["toks"]["tokens"] == ["Mail", "[EMAIL]", "about", "NYC", "\u200b"]
    assert rows["toks"]["tags"] == tok["tags"]


def test_chat_tool_turns_and_media_paths_untouched(project, tmp_path):
    call = '{"name": "lookup",  "arguments": {"email": "a@example.com"}}'
    rec = {"messages": [{"role": "user", "content": "Find  <i>me</i>"},
                        {"role": "assistant", "content": call},
                        {"role": "tool", "content": "  raw   output  "}]}
    commit(project, "sharegpt", [rec], "chat")
    audio = str(tmp_path / "a  b.wav")
    commit(project, "audio_transcript", [{"audio": audio, "text": "zero"},
                                         {"audio": audio + "2", "text": "zero"}], "audio")
    report = clean(project, CleanConfig(chunk=False, quality=False))
    rows = {(r["import_id"], r["row_index"]): r["record"]
            for r in read_jsonl(project.cleaned_dir / "rows.jsonl")}
    msgs = rows[("chat", 0)]["messages"]
    assert msgs[0]["content"] == "Find me"
    assert msgs[1]["content"] == call and msgs[2]["content"] == "  raw   output  "
    # Same transcript, different recordings: not duplicates; paths kept byte for byte.
    assert rows[("audio", 0)]["audio"] == audio and rows[("audio", 1)]["audio"] == audio + "2"
    assert report.pii_by_type == {"email": 1}


# ---- chunks ------------------------------------------------------------------------------
def test_token_chunks_with_overlap(project, shared_data):
    from brewslm_core.clean.chunk import load_tokenizer

    contexts = squad_contexts(shared_data)[:5]
    commit(project, "text", [{"text": c} for c in contexts])
    report = clean(project, CleanConfig(chunk_tokens=64, chunk_overlap=16, pii=False))
    chunks = read_jsonl(project.cleaned_dir / "chunks.jsonl")
    docs = {r["row_index"]: r["record"]["text"] for r in read_jsonl(project.cleaned_dir / "rows.jsonl")}
    assert report.chunks == len(chunks) > len(contexts)
    tok = load_tokenizer()
    by_doc: dict[int, list[dict]] = {}
    for c in chunks:
        assert c["text"] == docs[c["row_index"]][c["start_char"]:c["end_char"]]
        assert c["n_tokens"] <= 64
        assert len(tok(c["text"], add_special_tokens=False)["input_ids"]) == c["n_tokens"]
        by_doc.setdefault(c["row_index"], []).append(c)
    for parts in by_doc.values():
        assert parts[0]["start_char"] == 0
        assert parts[-1]["end_char"] == len(docs[parts[0]["row_index"]])
        for a, b in zip(parts, parts[1:], strict=False):
            assert b["start_char"] < a["end_char"]  # they overlap


# ---- task, staleness, config, CLI --------------------------------------------------------
def _spam_records(data: Path) -> list[dict]:
    return [{"text": t, "label": label} for label, t in sms(data)]


def test_background_clean_and_staleness(project, shared_data):
    commit(project, "classification", _spam_records(shared_data)[:800])
    task_id = start_clean(project, {"pii_policy": "mask", "chunk": False})
    st = tasks.wait(project, task_id, timeout=300)
    assert st.state == "succeeded", st.error
    on_disk = json.loads((project.cleaned_dir / "report.json").read_text())
    assert st.result == on_disk
    assert st.progress["done"] == st.progress["total"] == 800
    assert require_current(project).input_rows == 800
    commit(project, "classification", _spam_records(shared_data)[800:810], "imp2")
    assert current_report(project) is None  # new rows committed: the clean is stale
    with pytest.raises(FileNotFoundError, match="brewslm clean"):
        require_current(project)


def test_clean_in_a_worker_process(project, shared_data):
    records = _spam_records(shared_data)[:50]
    commit(project, "classification", records)
    commit(project, "text", [{"text": r["text"]} for r in records[:5]], "as_text")
    task_id = start_clean(project, CleanConfig(chunk=False, pii_policy="mask"), runner="process")
    st = tasks.wait(project, task_id, timeout=300)
    assert st.state == "succeeded", st.error
    assert st.pid is not None and st.result["input_rows"] == 55
    assert st.result["config"]["pii_policy"] == "mask"
    # Duplicates are per shape: the same texts committed as another shape are not removed.
    metas = [m for m in metadata(project) if m["import_id"] == "as_text"]
    assert all(m["kept"] for m in metas)


def test_cancel_running_clean(project, shared_data):
    commit(project, "classification", _spam_records(shared_data) * 3)
    task_id = start_clean(project, CleanConfig(chunk=False))
    deadline = time.monotonic() + 120
    while (st := tasks.status(project, task_id)).progress["done"] < 500:  # really running
        assert not st.done and time.monotonic() < deadline, st
        time.sleep(0.05)
    tasks.cancel(project, task_id)
    st = tasks.wait(project, task_id, timeout=300)
    assert st.state == "cancelled"
    assert st.progress["done"] < st.progress["total"]
    assert not (project.cleaned_dir / "report.json").exists()
    assert not list(project.cleaned_dir.glob("*.jsonl"))


def test_config_errors_list_every_problem():
    with pytest.raises(CleanConfigError) as err:
        CleanConfig(pii_policy="hide", near_dup_threshold=1.5, chunk_overlap=500)
    msg = str(err.value)
    assert "pii_policy 'hide'" in msg and "near_dup_threshold" in msg and "chunk_overlap" in msg
    with pytest.raises(CleanConfigError, match="did you mean 'near_dup'"):
        CleanConfig.from_dict({"near_dupe": False})
    import importlib.util

    if importlib.util.find_spec("presidio_analyzer") is None:
        with pytest.raises(CleanConfigError, match="need presidio"):
            CleanConfig(pii_types=("email", "person"))
    else:
        assert CleanConfig(pii_types=("email", "person")).pii_types == ("email", "person")


def test_cli_clean_json(project, shared_data):
    from typer.testing import CliRunner

    from brewslm_core.cli import app

    commit(project, "classification", _spam_records(shared_data)[:300])
    res = CliRunner().invoke(app, ["clean", str(project.root), "--pii-policy", "mask",
                                   "--no-near-dup", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["input_rows"] == 300 and report["pii_policy"] == "mask"
    assert report["config"]["near_dup"] is False
    assert "near_duplicate" not in report["removed_by_reason"]
    res = CliRunner().invoke(app, ["clean", str(project.root), "--pii-policy", "block"])
    assert res.exit_code == 3 and "BLOCKED" in res.stdout
