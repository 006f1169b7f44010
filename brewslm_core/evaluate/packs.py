"""Eval packs: ``evals/<name>.yaml`` or ``.json`` in the project. What to score, on what, and
which gates a run must pass to be promotable.

    name: default
    dataset: eval                 # eval | gold | train (manifest splits) or {file: prepared/x.jsonl}
    max_rows: 200                 # optional cap (first rows of the dataset)
    metrics: [accuracy, macro_f1] # optional: the headline metrics (every metric is kept anyway)
    gates:
      - macro_f1 >= 0.85
      - per_class.*.recall >= 0.5  # "*" = every class: the per-class minimum recall
      - latency_p95_ms <= 250       # single-row predict latency, measured on latency_rows rows
    latency_rows: 16              # optional (default 16 when a gate or metric names latency)
    judge:                        # optional LLM-as-judge, any OpenAI-compatible endpoint
      base_url: http://127.0.0.1:8000/v1
      model: my-judge
      api_key_env: OPENAI_API_KEY  # optional; local servers take any key

A pack with problems is refused with every problem listed at once.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..contracts.evaluate import GATE_OPS, Gate
from ..contracts.prepare import SCORING_MODES

if TYPE_CHECKING:
    from ..project import Project

EVALS_DIR = "evals"
PACK_SUFFIXES = (".yaml", ".yml", ".json")
SPLIT_NAMES = ("eval", "gold", "train")
PACK_KEYS = ("name", "description", "dataset", "max_rows", "metrics", "gates", "latency_rows", "judge")
JUDGE_KEYS = ("base_url", "model", "api_key_env", "max_rows", "timeout")
DEFAULT_LATENCY_ROWS = 16

# metrics Evaluate adds to every task's own
EVAL_METRICS = ("pass_rate", "latency_p50_ms", "latency_p95_ms", "rows_per_s", "n_examples")
JUDGE_METRICS = ("judge_correctness", "judge_faithfulness", "judge_n")
# the top-level metrics each handler's score() reports (Evaluate's metric interface)
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("n", "eval_loss", "accuracy", "macro_f1", "per_class", "confusion_matrix",
                       "skipped_unknown_label"),
    "safety": ("unsafe_recall", "unsafe_precision", "n", "eval_loss", "accuracy", "macro_f1",
               "per_class", "confusion_matrix", "per_category_f1", "category_micro_f1",
               "unknown_categories", "skipped_unknown_label"),
    "qa": ("n", "eval_loss", "exact_match", "f1", "has_answer_n", "has_answer_exact_match",
           "has_answer_f1", "no_answer_n", "no_answer_accuracy", "predicted_no_answer_rate"),
    "structured_extraction": ("n", "eval_loss", "precision", "recall", "f1", "macro_f1", "gold_spans",
                              "predicted_spans", "per_type", "seqeval", "field_match", "exact_match",
                              "per_field", "invalid_json_rate"),
    "seq2seq": ("n", "eval_loss", "perplexity", "bleu", "chrf", "rougeL", "generated_n"),
    "alignment": ("n", "eval_loss", "preference_accuracy", "reward_margin_mean", "reward_chosen_mean",
                  "reward_rejected_mean", "n_desirable", "n_undesirable", "reward_desirable_mean",
                  "reward_undesirable_mean", "reward_gap", "reward_sign_accuracy"),
    "rag": ("n", "eval_loss", "exact_match", "f1", "retrieval_recall_at_k", "answer_in_retrieved_at_k",
            "answer_tokens_in_passages", "faithfulness_lexical", "faithfulness_embedding", "empty_answers"),
    "audio_transcription": ("n", "eval_loss", "wer", "cer", "exact_match", "skipped"),
    "vision_language": ("n", "eval_loss", "answered", "exact_match", "token_f1", "bleu", "chrf", "rougeL"),
}
# the starter gate per scoring mode (``brewslm eval init``): a real bar, easy to edit
STARTER_GATES: dict[str, list[str]] = {
    "label_match": ["macro_f1 >= 0.8", "per_class.*.recall >= 0.5"],
    "span_f1": ["f1 >= 0.6", "exact_match >= 0.4"],
    "span_set": ["f1 >= 0.6"],
    "field_match": ["exact_match >= 0.6", "invalid_json_rate <= 0.1"],
    "faithfulness": ["f1 >= 0.3", "faithfulness_lexical >= 0.6"],
    "preference_margin": ["preference_accuracy >= 0.6", "reward_margin_mean > 0"],
    "bleu_rouge": ["rougeL >= 0.3", "chrf >= 30"],
    "exact_match": ["exact_match >= 0.5"],
    "wer": ["wer <= 0.3", "cer <= 0.2"],
}
SAFETY_GATES = ["unsafe_recall >= 0.9", "macro_f1 >= 0.8"]
_GATE = re.compile(r"^\s*(?P<metric>[A-Za-z_][\w.*-]*)\s*(?P<op>>=|<=|==|>|<)\s*(?P<threshold>\S+)\s*$")


class EvalPackError(ValueError):
    """A pack file with one or more problems; the message lists every one of them."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path, self.problems = path, problems
        super().__init__(f"eval pack {path} has problems:\n- " + "\n- ".join(problems))


@dataclass(frozen=True)
class EvalPack:
    name: str
    path: str  # the file it came from ("" for a pack built in code)
    dataset: dict[str, str]  # {"split": "eval"} or {"file": "prepared/x.jsonl"}
    gates: tuple[Gate, ...] = ()
    metrics: tuple[str, ...] = ()
    max_rows: int | None = None
    latency_rows: int = 0  # 0 = do not measure latency
    judge: dict[str, Any] | None = None
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


def evals_dir(project: Project) -> Path:
    return project.root / EVALS_DIR


def list_packs(project: Project) -> list[str]:
    folder = evals_dir(project)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.iterdir() if p.suffix in PACK_SUFFIXES)


def find_pack(project: Project, name_or_file: str) -> Path:
    """``evals/<name>.yaml|yml|json`` or a file path; a clear error naming the packs there are."""
    direct = Path(name_or_file).expanduser()
    if direct.suffix in PACK_SUFFIXES and (direct.is_file() or (project.root / direct).is_file()):
        return direct if direct.is_file() else project.root / direct
    for suffix in PACK_SUFFIXES:
        path = evals_dir(project) / f"{name_or_file}{suffix}"
        if path.is_file():
            return path
    known = list_packs(project)
    close = difflib.get_close_matches(name_or_file, known, n=2)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise FileNotFoundError(
        f"no eval pack {name_or_file!r} (looked in {evals_dir(project)} for .yaml/.yml/.json; packs: "
        f"{known or 'none'}){hint}. Write one with `brewslm eval init {project.root}`"
    )


def parse_gate(item: Any) -> tuple[Gate | None, str | None]:
    """A gate from ``"metric op threshold"`` or ``{metric, op, threshold}``; (None, problem) if bad."""
    if isinstance(item, str):
        found = _GATE.match(item)
        if not found:
            return None, f"gate {item!r} is not 'metric op threshold' (ops: {', '.join(GATE_OPS)})"
        metric, op, threshold = found["metric"], found["op"], found["threshold"]
    elif isinstance(item, dict):
        unknown = sorted(set(item) - {"metric", "op", "threshold"})
        if unknown or not {"metric", "op", "threshold"} <= set(item):
            return None, f"gate {item!r} needs exactly the keys metric, op, threshold"
        metric, op, threshold = str(item["metric"]), str(item["op"]), item["threshold"]
    else:
        return None, f"gate {item!r} is neither a string nor a mapping"
    if op not in GATE_OPS:
        return None, f"gate {item!r}: op {op!r} is not one of {', '.join(GATE_OPS)}"
    try:
        value = float(threshold)
    except (TypeError, ValueError):
        return None, f"gate {item!r}: threshold {threshold!r} is not a number"
    return Gate(metric=metric, op=op, threshold=value), None


def known_metric(task_profile: str, metric: str) -> bool:
    from .metrics import METRICS

    head = metric.split(".", 1)[0]
    return head in TASK_METRICS.get(task_profile, ()) + EVAL_METRICS + JUDGE_METRICS or head in METRICS


def check_pack(data: Any, task_profile: str | None, path: str = "<pack>") -> EvalPack:
    """Validate pack data; every problem is collected before one EvalPackError is raised."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise EvalPackError(path, [f"the pack must be a mapping of keys ({', '.join(PACK_KEYS)})"])
    for key in sorted(set(data) - set(PACK_KEYS)):
        close = difflib.get_close_matches(key, PACK_KEYS, n=1)
        problems.append(f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    name = data.get("name") or Path(path).stem
    dataset = _dataset(data.get("dataset", "eval"), problems)
    gates: list[Gate] = []
    raw_gates = data.get("gates") or []
    if not isinstance(raw_gates, list):
        problems.append("gates must be a list of 'metric op threshold' entries")
        raw_gates = []
    for item in raw_gates:
        gate, problem = parse_gate(item)
        if problem:
            problems.append(problem)
        elif gate is not None:
            gates.append(gate)
    metrics = data.get("metrics") or []
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        problems.append("metrics must be a list of metric names")
        metrics = []
    if task_profile:
        for metric in [g.metric for g in gates] + list(metrics):
            if not known_metric(task_profile, metric):
                known = TASK_METRICS.get(task_profile, ()) + EVAL_METRICS
                close = difflib.get_close_matches(metric.split(".")[0], known, n=1)
                problems.append(
                    f"metric {metric!r} is not one {task_profile} scoring produces"
                    + (f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(known)}")
                )
    max_rows = data.get("max_rows")
    if max_rows is not None and (not isinstance(max_rows, int) or isinstance(max_rows, bool) or max_rows < 1):
        problems.append(f"max_rows must be a positive integer, not {max_rows!r}")
        max_rows = None
    wants_latency = any(m.startswith("latency_") for m in [g.metric for g in gates] + list(metrics))
    latency_rows = data.get("latency_rows", DEFAULT_LATENCY_ROWS if wants_latency else 0)
    if not isinstance(latency_rows, int) or isinstance(latency_rows, bool) or latency_rows < 0:
        problems.append(f"latency_rows must be a non-negative integer, not {latency_rows!r}")
        latency_rows = 0
    judge = data.get("judge")
    if judge is not None:
        if not isinstance(judge, dict):
            problems.append("judge must be a mapping with base_url and model")
            judge = None
        else:
            for key in sorted(set(judge) - set(JUDGE_KEYS)):
                problems.append(f"judge: unknown key {key!r} (known: {', '.join(JUDGE_KEYS)})")
            for key in ("base_url", "model"):
                if not isinstance(judge.get(key), str) or not judge.get(key):
                    problems.append(f"judge: {key} is required (a string)")
    if problems:
        raise EvalPackError(path, problems)
    return EvalPack(name=str(name), path=path, dataset=dataset, gates=tuple(gates),
                    metrics=tuple(metrics), max_rows=max_rows, latency_rows=latency_rows,
                    judge=judge, description=str(data.get("description") or ""), raw=dict(data))


def _dataset(value: Any, problems: list[str]) -> dict[str, str]:
    if isinstance(value, str):
        if value in SPLIT_NAMES:
            return {"split": value}
        if value.endswith(".jsonl"):
            return {"file": value}
        problems.append(f"dataset {value!r} is not a split ({', '.join(SPLIT_NAMES)}) nor a .jsonl file")
        return {"split": "eval"}
    if isinstance(value, dict) and len(value) == 1:
        (key, name), = value.items()
        if key == "split" and name in SPLIT_NAMES:
            return {"split": str(name)}
        if key == "file" and isinstance(name, str) and name:
            return {"file": name}
    problems.append(f"dataset must be one of {', '.join(SPLIT_NAMES)}, or {{split: NAME}} / {{file: PATH}}; "
                    f"got {value!r}")
    return {"split": "eval"}


def read_pack_file(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise EvalPackError(str(path), [f"not valid JSON: {exc}"]) from exc
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EvalPackError(str(path), [f"not valid YAML: {exc}"]) from exc


def load_pack(project: Project, name_or_file: str, task_profile: str | None = None) -> EvalPack:
    path = find_pack(project, name_or_file)
    return check_pack(read_pack_file(path), task_profile, str(path))


def starter_pack(task_profile: str, scoring_mode: str | None = None, name: str = "default") -> dict[str, Any]:
    """A starter pack for a task: its manifest's scoring mode picks the metrics and gates."""
    mode = scoring_mode or SCORING_MODES.get(task_profile, "")
    gates = SAFETY_GATES if task_profile == "safety" else STARTER_GATES.get(mode, [])
    metrics = sorted({g.split()[0].split(".")[0] for g in gates})
    return {
        "name": name,
        "description": f"starter pack for {task_profile} (scoring mode {mode}); edit the gates to your bar",
        "dataset": "eval",
        "metrics": metrics,
        "gates": list(gates),
    }


def init_pack(project: Project, name: str = "default", force: bool = False) -> Path:
    """Write ``evals/<name>.yaml`` from the manifest's task profile and scoring mode."""
    import yaml

    from ..contracts.prepare import Manifest

    manifest = Manifest.load(project, verify=False)
    data = starter_pack(manifest.task_profile, manifest.output_schema.scoring_mode, name)
    if manifest.counts.get("gold"):
        data["dataset"] = "gold"  # the gold set, when there is one, is what gates should read
    path = evals_dir(project) / f"{name}.yaml"
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; edit it, pick another name, or pass force=True (--force)")
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# eval pack for {manifest.task_profile}; gates are 'metric op threshold' lines\n"
    path.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
