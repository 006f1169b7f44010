"""RAG retrieves from the project's cleaned corpus by default (real HotpotQA rows, real engine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_handlers_generative import HOTPOT, hotpot_rows, named_answer_sentence

from brewslm_core.mapping import commit
from brewslm_core.train import TrainConfig
from brewslm_core.train.handlers.rag import RAGHandler, use_corpus
from brewslm_core.train.retrieval import Passage, project_corpus


def cleaned_project(project, shared_data: Path, tmp_path: Path) -> list[dict]:
    """Four real HotpotQA rows plus their supporting passages as a separate document collection,
    cleaned (so the project has rows.jsonl and chunks.jsonl). Returns the RAG records."""
    from brewslm_core.clean import CleanConfig, clean

    raw = json.loads((shared_data / HOTPOT).read_text(encoding="utf-8"))
    records = [r["record"] for r in hotpot_rows(shared_data, len(raw))]
    picked = [i for i, rec in enumerate(records) if raw[i]["type"] == "bridge" and named_answer_sentence(rec)]
    picked = picked[:4]
    assert len(picked) == 4
    subset = tmp_path / "hotpot_subset.json"
    subset.write_text(json.dumps([raw[i] for i in picked]), encoding="utf-8")
    commit(project, f"json:{subset}", "rag", force=True)
    docs = tmp_path / "docs.jsonl"
    texts = []
    for i in picked:
        wanted = {s["title"] for s in records[i]["supporting"]}
        texts += [f"{p['title']}. {p['text']}" for p in records[i]["passages"] if p["title"] in wanted]
    docs.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    commit(project, f"jsonl:{docs}", "text", {"text": "text"}, force=True)
    clean(project, CleanConfig(near_dup=False, pii=False, quality=False))
    return [records[i] for i in picked]


@pytest.mark.slow
def test_rag_run_retrieves_from_the_projects_cleaned_chunks(project, shared_data, tmp_path):
    from brewslm_core.prepare import prepare
    from brewslm_core.train.runner import train_project

    cleaned_project(project, shared_data, tmp_path)
    corpus = project_corpus(project)
    chunk_ids = {p.source for p in corpus if not p.title}
    row_ids = {p.source for p in corpus if p.title}
    assert chunk_ids and row_ids

    prepare(project, task_profile="rag", eval_fraction=0.5, max_length=128)
    result = train_project(
        project, {"max_steps": 1, "batch_size": 2, "threads": 1, "lora_r": 4, "lr": 5e-4}
    )
    assert result.status == "completed", result.error
    plan = json.loads((Path(result.run_dir) / "plan.json").read_text())
    state = plan["handler_state"]
    assert state["retrieval"] == "corpus" and state["corpus_source"] == "project"
    assert state["corpus_passages"] == len(corpus)
    assert any(f"{len(corpus)} passages" in n and "cleaned" in n for n in state["notes"])

    sources = result.eval["retrieved_sources"]
    assert len(sources) == result.eval["n"] == 2 and all(len(s) == 3 for s in sources)
    flat = [s for row in sources for s in row]
    # every passage came from the project's corpus; some are chunks of the document collection,
    # which no record carries (a record's own passages have no source at all)
    assert set(flat) <= chunk_ids | row_ids
    assert set(flat) & chunk_ids


    # a corpus set with use_corpus(), or given to the handler, wins over the project's
    own = [Passage("Only", "The only passage there is.")]
    config = TrainConfig(task_profile="rag", max_length=96)
    handler = RAGHandler()
    with use_corpus(own):
        handler.bind(project, Path(result.run_dir))
        handler.setup(Path(plan["base_model_path"]), [], config)
    assert handler.corpus == own and handler.state()["corpus_source"] == "use_corpus"
    assert handler.state()["notes"][-1] == "retrieval from the corpus set with use_corpus(): 1 passages"
    handler = RAGHandler(corpus=own)
    handler.bind(project, Path(result.run_dir))
    assert handler.corpus == own and handler.state()["corpus_source"] == "given"


def test_rag_without_a_clean_keeps_record_passages(project):
    handler = RAGHandler()
    handler.bind(project, project.root)  # nothing cleaned: no corpus
    assert handler.corpus is None and handler.state()["retrieval"] == "record_passages"
    assert handler.state()["corpus_source"] is None
    assert handler.state()["notes"] == [
        "retrieval from each record's own passages (no corpus given, none cleaned in the project)"
    ]
