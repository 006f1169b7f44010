"""`make demo`: the pipeline end to end on the bundled data, saying what each stage did.

    python -m brewslm_core.demo [PROJECT_DIR]

The demo owns its project folder: it marks it, and wipes and rebuilds only a folder it marked.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import warnings
from importlib.resources import files
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import Project
from .contracts import FORCE_THRESHOLD

MARKER = ".brewslm-demo"
console = Console()


def demo_data() -> Path:
    return Path(str(files("brewslm_core") / "data" / "brew_intents.csv"))


def fresh_project(path: Path) -> Project:
    if path.exists():
        if not (path / MARKER).exists():
            raise SystemExit(
                f"{path} exists and was not made by the demo; pass another folder: "
                "make demo PROJECT=some/new/folder"
            )
        shutil.rmtree(path)
    project = Project.create(path, project={"name": "brew-demo"})
    (path / MARKER).write_text("made by `make demo`; safe to delete\n", encoding="utf-8")
    return project


def step(title: str) -> None:
    console.rule(f"[bold]{title}")


def show_describe(locator: str) -> None:
    from .ingest import open_source

    desc = open_source(locator).describe()
    console.print(f"{desc.rows} rows ({desc.sentinel_rows} sentinel), encoding {desc.encoding}, "
                  f"{desc.bytes} bytes; notes: {', '.join(desc.notes) or '-'}")
    table = Table("field", "type", "fill rate")
    for f in desc.fields:
        table.add_row(f.name, f.inferred_type, f"{f.fill_rate:.0%}")
    console.print(table)


def show_hypotheses(locator: str):
    from .introspect import introspect

    hyps = introspect(locator)
    table = Table("#", "shape", "confidence", "rationale")
    for i, h in enumerate(hyps[:5], 1):
        table.add_row(str(i), h.shape, f"{h.confidence:.2f}", h.rationale)
    console.print(table)
    return hyps


def show_dry_run(project: Project, locator: str, shape: str, field_map: dict, options: dict):
    from .mapping import dry_run

    report = dry_run(locator, shape, field_map, options, project=project)
    console.print(f"total {report.total} = accepted {report.accepted} + rejected {report.rejected}"
                  f" (sentinel {report.sentinel})")
    table = Table("reason", "count", "example")
    for group in report.groups:
        example = group.examples[0].detail if group.examples else ""
        table.add_row(group.reason, str(group.count), example)
    console.print(table)
    return report


def run_clean(project: Project) -> None:
    from . import tasks
    from .clean import load_report, start_clean

    task_id = start_clean(project)
    with console.status("cleaning…") as status:
        while not (st := tasks.status(project, task_id)).done:
            p = st.progress
            status.update(f"cleaning: {p.get('done')}/{p.get('total')} {p.get('message') or ''}")
            time.sleep(0.2)
    if st.state != "succeeded":
        raise SystemExit(f"clean {st.state}: {st.error}")
    report = load_report(project)
    if report is None:
        raise SystemExit("clean finished but wrote no report")
    console.print(
        f"kept {report.kept_rows} of {report.input_rows} rows in {report.duration_s:.1f} s; "
        f"removed by reason {report.removed_by_reason or '{}'}; changed by step "
        f"{report.changed_by_step or '{}'}; PII by type {report.pii_by_type or '{}'} "
        f"(policy {report.pii_policy}); {report.chunks} chunks; languages {report.languages}"
    )


def run_prepare(project: Project) -> None:
    from .prepare import prepare

    manifest = prepare(project)
    data = manifest.to_dict()
    console.print({k: data[k] for k in ("task_profile", "output_schema", "counts") if k in data})


# Small enough for a laptop CPU in about a minute; the loss still falls visibly.
DEMO_TRAIN = {"method": "lora", "epochs": 3, "batch_size": 16, "lr": 2e-3, "max_length": 64,
              "eval_every": 10, "checkpoint_every": 20}
# BREWSLM_SMOKE=1 (tests, CI): the same path, a handful of steps.
SMOKE_TRAIN = {**DEMO_TRAIN, "epochs": 1, "max_steps": 4, "eval_every": 2, "checkpoint_every": 2}


def run_preflight(project: Project, config: dict) -> None:
    from .preflight import preflight

    report = preflight(project, config)
    for item in (*report.blockers, *report.warnings):
        console.print(f"- {item.check}: {item.message}")
    plan = report.plan
    peak = report.estimate.total_mb if report.estimate else float("nan")
    console.print(f"passed={report.passed} ({report.mode}); estimated peak {peak:.0f} MB; "
                  f"probe {plan.probe.get('seconds_per_step') if plan else '?'} s/step; "
                  f"plan {report.plan_path}")
    if not report.passed:
        raise SystemExit("preflight blocked the run; see the blockers above")


def run_train(project: Project, config: dict) -> str:
    from .train.runner import train_project

    with console.status("training (MiniLM + LoRA on the bundled intents)…") as status:
        def progress(done: int, total: int, message: str) -> None:
            status.update(f"training: step {done}/{total} {message}")

        result = train_project(project, config, progress=progress)
    if result.status != "completed":
        raise SystemExit(f"training {result.status}: {result.error}")
    ev = result.eval or {}
    console.print(f"run {result.run_id}: {result.steps} steps in {result.seconds:.0f} s, "
                  f"{result.real_tokens_per_s:.0f} real tokens/s, final train loss "
                  f"{result.final_train_loss:.3f}; eval accuracy {ev.get('accuracy', '?')}, "
                  f"eval loss {ev.get('eval_loss', '?')}; adapter in {result.adapter_dir}")
    return result.run_id


def run_evaluate(project: Project, run_id: str) -> None:
    from .evaluate import evaluate, init_pack

    pack = init_pack(project, force=True)
    console.print(f"starter eval pack {pack.relative_to(project.root)} "
                  "(gates from the manifest's scoring mode)")
    report = evaluate(project, run_id, "default")
    table = Table("gate", "value", "passed")
    for g in report.gates:
        value = "-" if g.value is None else f"{g.value:.3f}"
        table.add_row(f"{g.metric} {g.op} {g.threshold}", value, "yes" if g.passed else "no")
    console.print(table)
    verdict = "promotable" if report.promotable else f"not promotable: {report.not_promotable_reason}"
    console.print(f"{report.eval_id}: pass rate {report.pass_rate:.2f} on {report.n_examples} examples, "
                  f"{len(report.failure_clusters)} failure clusters; {verdict}")


def run_export(project: Project, run_id: str) -> None:
    from .export import export

    bundle = export(project, run_id, "hf")
    size = sum(f.size for f in bundle.files)
    console.print(f"{bundle.export_id}: merged HF folder, {len(bundle.files)} files, {size / 1e6:.1f} MB, "
                  f"in {bundle.path}; smoke check in smoke.json")


def run_predict(project: Project, run_id: str) -> None:
    from .predict import predict

    texts = ["my order arrived with a broken bottle", "how long does shipping take to Canada?"]
    for text, out in zip(texts, predict(project, run_id, texts), strict=True):
        console.print(f"{text!r} -> {out.get('label')} ({max(out.get('scores', {0: 0}).values()):.2f})")


def show_events(project: Project) -> None:
    df = project.events.query(
        "SELECT id, stage, severity, reason_code, summary FROM run_events ORDER BY id"
    )
    table = Table(*df.columns)
    for row in df.itertuples(index=False):
        table.add_row(*("" if v is None or v != v else str(v) for v in row))  # v != v: NaN
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # The demo narrates each stage itself; library progress bars and deprecation notes are noise.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    path = Path(argv[0] if argv else "demo-project").resolve()
    project = fresh_project(path)
    locator = f"csv:{demo_data()}"
    console.print(f"project {project.root} (id {project.id}); data {locator}")

    step("1 · Ingest: what is in the file")
    show_describe(locator)

    step("2 · Introspect: ranked shape hypotheses (never auto-picked)")
    hyps = show_hypotheses(locator)
    top = hyps[0]
    console.print(f"taking the top hypothesis {top.shape!r} ({top.confidence:.2f}); "
                  f"below {FORCE_THRESHOLD} the demo would have to force it")

    step("3 · Map dry run: every row accepted or rejected with a reason")
    fmap, opts = top.mapping.field_map, dict(top.mapping.options or {})
    show_dry_run(project, locator, top.shape, fmap, opts)

    step("4 · Map commit: append the accepted rows, record a RunEvent")
    from .mapping import commit

    result = commit(project, locator, top.shape, fmap, opts)
    console.print(result.to_dict())

    step("5 · Clean (background task, polled)")
    run_clean(project)

    step("6 · Prepare: the manifest everything downstream reads")
    run_prepare(project)

    train_config = SMOKE_TRAIN if os.environ.get("BREWSLM_SMOKE") == "1" else DEMO_TRAIN
    step("7 · Preflight: dependencies, memory fit, capability, gates; the train plan")
    run_preflight(project, train_config)

    step("8 · Train: the classification handler, traced and checkpointed")
    run_id = run_train(project, train_config)

    step("9 · Evaluate: an eval pack whose gates decide promotability")
    run_evaluate(project, run_id)

    step("10 · Export: a merged HF folder another tool can load, with its smoke check")
    run_export(project, run_id)

    step("Try it: the trained run on new sentences (brewslm predict PROJECT RUN \"text\")")
    run_predict(project, run_id)

    step("RunEvents, queried with SQL from DuckDB")
    show_events(project)
    console.print(f"[green]done[/green]: project folder {project.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
