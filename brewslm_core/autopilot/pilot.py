"""Autopilot: ingest → introspect → map → clean → prepare → preflight → train → eval (→ export).

Everything runs under one parent run ``autopilot-<hex>``: the stages' own events carry it as
``parent_run_id`` (``events.parent_run``). Repairs are judged before they are applied:

* safe (normal mode applies and records them; strict mode refuses with
  ``autopilot_strict_mode_refused``): dropping rejected rows that are at most ``max_drop_share``
  of the source, a smaller batch (with more accumulation) after a memory-fit blocker;
* unsafe (always refused, ``autopilot_repair_blocked``): dropping more than that share, forcing
  a mapping below the 0.80 confidence bar, training another task than the one asked for;
* no plan (``autopilot_no_safe_plan``): introspection below 0.80 for the task, or no handler fits.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from ..contracts.autopilot import AutopilotResult, AutopilotStep, Repair
from ..contracts.reasons import FORCE_THRESHOLD, SHAPE_TASK_PROFILE, TASK_PROFILES
from ..events import parent_run
from ..project import Project

STEPS: tuple[str, ...] = ("introspect", "map", "clean", "prepare", "preflight", "train", "eval",
                          "export")
MAX_DROP_SHARE = 0.2  # dropping more rejected rows than this share of the source is unsafe
HARMLESS = frozenset({"duplicate_row", "dropped_by_user"})
Progress = Callable[[int, int, str], None]


class Refused(Exception):
    def __init__(self, code: str, message: str, payload: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.payload = payload or {}


class Pilot:
    def __init__(self, project: Project, locator: str, task: str, *, base: str | None,
                 strict: bool, max_drop_share: float, train: dict[str, Any], probe: bool,
                 max_memory_mb: float | None, progress: Progress | None) -> None:
        self.project, self.locator, self.task, self.base = project, locator, task, base
        self.strict, self.max_drop_share, self.train_overrides = strict, max_drop_share, dict(train)
        self.probe, self.max_memory_mb = probe, max_memory_mb
        self.progress = progress or (lambda done, total, message: None)
        self.run_id = f"autopilot-{secrets.token_hex(4)}"
        self.steps: list[AutopilotStep] = []
        self.repairs: list[Repair] = []
        self.outputs: dict[str, Any] = {}

    # ---- recording ------------------------------------------------------------------------
    def event(self, severity: str, summary: str, payload: dict[str, Any],
              reason_code: str | None = None) -> None:
        self.project.events.append(stage="autopilot", severity=severity, summary=summary,
                                   payload=payload, reason_code=reason_code, run_id=self.run_id)

    def done(self, name: str, detail: str, **data: Any) -> None:
        self.steps.append(AutopilotStep(name=name, status="done", detail=detail, data=data))
        self.event("info", f"autopilot {name}: {detail}", {"step": name, **data})
        self.progress(len(self.steps), len(STEPS), f"{name}: {detail}")

    def skipped(self, name: str, detail: str) -> None:
        self.steps.append(AutopilotStep(name=name, status="skipped", detail=detail, data={}))
        self.event("info", f"autopilot {name} skipped: {detail}", {"step": name, "skipped": True})
        self.progress(len(self.steps), len(STEPS), f"{name} skipped: {detail}")

    def repair(self, step: str, what: str, change: dict[str, Any]) -> None:
        """A safe repair: applied and recorded in normal mode, refused in strict mode."""
        if self.strict:
            raise Refused("autopilot_strict_mode_refused",
                          f"strict mode refuses the repair at {step}: {what}",
                          {"step": step, "repair": what, "change": change})
        self.repairs.append(Repair(step=step, what=what, change=change))
        self.event("warning", f"autopilot repair at {step}: {what}",
                   {"step": step, "repair": what, "change": change})

    # ---- the stages -----------------------------------------------------------------------
    def introspect(self) -> tuple[str, dict[str, str], dict[str, Any] | None, float]:
        from ..introspect import introspect

        hyps = introspect(self.locator, project=self.project)
        fitting = [h for h in hyps if SHAPE_TASK_PROFILE.get(h.shape) == self.task]
        ranked = ", ".join(f"{h.shape} {h.confidence:.2f}" for h in hyps[:4]) or "none"
        if not fitting:
            raise Refused("autopilot_no_safe_plan",
                          f"no shape of {self.locator} feeds the {self.task} handler (introspection: "
                          f"{ranked}). Decide the task (--task) that matches the data, or map it "
                          "by hand with `brewslm map`",
                          {"hypotheses": [h.to_dict() for h in hyps[:4]]})
        best = fitting[0]
        if best.confidence < FORCE_THRESHOLD:
            raise Refused("autopilot_no_safe_plan",
                          f"introspection is only {best.confidence:.2f} confident that {self.locator} "
                          f"is {best.shape} (below {FORCE_THRESHOLD:.2f}); autopilot never forces a "
                          "mapping. Check the dry run and commit with --force yourself, or fix the "
                          f"source. Ranked: {ranked}",
                          {"hypotheses": [h.to_dict() for h in hyps[:4]]})
        if hyps[0].shape != best.shape and hyps[0].confidence >= FORCE_THRESHOLD and \
                SHAPE_TASK_PROFILE.get(hyps[0].shape) != self.task:
            self.event("warning", f"the data looks more like {hyps[0].shape} "
                       f"({hyps[0].confidence:.2f}); training {self.task} as asked",
                       {"top": hyps[0].to_dict()})
        self.done("introspect", f"{best.shape} at {best.confidence:.2f} ({best.rationale})",
                  shape=best.shape, confidence=best.confidence)
        return best.shape, dict(best.mapping.field_map), best.mapping.options, best.confidence

    def map(self, shape: str, field_map: dict[str, str], options: dict[str, Any] | None) -> None:
        from ..mapping import commit, dry_run

        report = dry_run(self.locator, shape, field_map, options, project=self.project)
        serious = {r: n for r, n in report.by_reason.items() if r not in HARMLESS and n}
        dropped = sum(serious.values())
        share = dropped / report.total if report.total else 0.0
        if report.accepted == 0:
            raise Refused("autopilot_no_safe_plan",
                          f"no row of {self.locator} maps as {shape} ({report.by_reason}); fix the "
                          "field map by hand", {"by_reason": report.by_reason})
        if share > self.max_drop_share:
            raise Refused("autopilot_repair_blocked",
                          f"committing would drop {dropped} of {report.total} rows ({share:.0%}, "
                          f"more than the {self.max_drop_share:.0%} autopilot may drop): "
                          f"{serious}. Look at the rejections (`brewslm map --dry-run`) and fix the "
                          "source or the field map", {"by_reason": report.by_reason, "share": share})
        if dropped:
            self.repair("map", f"drop {dropped} rejected rows ({share:.0%}): "
                        + ", ".join(f"{r} {n}" for r, n in serious.items()),
                        {"drop_reasons": sorted(serious), "rows": dropped})
        result = commit(self.project, self.locator, shape, field_map, options)
        self.outputs["import_id"] = result.import_id
        self.done("map", f"committed {result.accepted} rows ({result.rejected} rejected)",
                  accepted=result.accepted, rejected=result.rejected, import_id=result.import_id)

    def clean(self) -> None:
        from ..clean import CleanConfig, clean

        # mask PII rather than train on it; never "block" (that would stop the run for a report)
        report = clean(self.project, CleanConfig(pii_policy="mask"))
        self.done("clean", f"kept {report.kept_rows} of {report.input_rows} rows, "
                  f"{report.pii_docs} with PII masked", kept=report.kept_rows,
                  removed=report.removed_by_reason)

    def prepare(self) -> None:
        from ..prepare import prepare

        manifest = prepare(self.project, task_profile=self.task, base_model=self.base)
        if manifest.task_profile != self.task:
            raise Refused("autopilot_repair_blocked",
                          f"prepare chose {manifest.task_profile}, not {self.task}; autopilot never "
                          "changes the task")
        self.done("prepare", ", ".join(f"{k} {v}" for k, v in manifest.counts.items()),
                  counts=dict(manifest.counts))

    def preflight(self) -> dict[str, Any]:
        from ..preflight import preflight

        config = dict(self.train_overrides)
        report = preflight(self.project, config or None, probe=self.probe,
                           max_memory_mb=self.max_memory_mb)
        if not report.passed:
            fit = next((b for b in report.blockers if b.code == "memory_does_not_fit"
                        and (b.suggestion or {}).get("changes")), None)
            others = [b for b in report.blockers if b is not fit]
            if fit is None or others:
                raise Refused("autopilot_repair_blocked",
                              "preflight blocked and autopilot knows no safe repair: "
                              + "; ".join(f"{b.code}: {b.message} (fix: {b.fix})"
                                          for b in report.blockers),
                              {"blockers": [b.to_dict() for b in report.blockers]})
            changes = dict(fit.suggestion["changes"])
            if "method" in changes:
                raise Refused("autopilot_repair_blocked",
                              f"the run fits only as method {changes['method']!r}: that changes the "
                              "recipe, not just the batch; decide it yourself",
                              {"changes": changes})
            self.repair("preflight", f"{fit.message}; use " + ", ".join(
                f"{k}={v}" for k, v in changes.items()), {"changes": changes})
            config.update(changes)
            report = preflight(self.project, config, probe=self.probe,
                               max_memory_mb=self.max_memory_mb)
            if not report.passed:
                raise Refused("autopilot_repair_blocked",
                              "preflight still blocked after the memory repair: "
                              + "; ".join(b.message for b in report.blockers))
        self.outputs["preflight_run_id"] = report.run_id
        self.done("preflight", f"passed ({len(report.warnings)} warnings)", run_id=report.run_id,
                  warnings=[w.code for w in report.warnings])
        return config

    def train(self, config: dict[str, Any]) -> str:
        from ..train import train_project

        def on_step(done: int, total: int, message: str) -> None:
            self.progress(len(self.steps), len(STEPS), f"train step {done}/{total} {message}")

        result = train_project(self.project, config, progress=on_step)
        if result.status != "completed":
            raise Refused("autopilot_repair_blocked",
                          f"training {result.run_id} stopped ({result.reason_code}: {result.error}); "
                          "see `brewslm coach PROJECT training` for the repair",
                          {"train_run_id": result.run_id, "reason_code": result.reason_code})
        self.outputs["train_run_id"] = result.run_id
        self.done("train", f"{result.run_id}: {result.steps} steps, final loss "
                  f"{result.final_train_loss:.4f}", run_id=result.run_id)
        return result.run_id

    def evaluate(self, run_id: str) -> bool:
        from ..evaluate import evaluate, init_pack, list_packs

        if not list_packs(self.project):  # gates to judge by: the task's starter pack
            path = init_pack(self.project)
            self.event("info", f"autopilot wrote the starter eval pack {path.name}",
                       {"step": "eval", "pack": str(path.relative_to(self.project.root))})
        report = evaluate(self.project, run_id)
        self.outputs["eval_id"] = report.eval_id
        passed = sum(g.passed for g in report.gates)
        self.done("eval", f"{report.eval_id}: {passed}/{len(report.gates)} gates, pass rate "
                  f"{(report.pass_rate or 0):.0%}" + ("" if report.promotable else
                                                      f"; not promotable ({report.not_promotable_reason})"),
                  eval_id=report.eval_id, promotable=report.promotable)
        return bool(report.promotable)

    def export(self, run_id: str) -> None:
        from ..export import export

        bundle = export(self.project, run_id, "adapter")
        self.outputs["export_id"] = bundle.export_id
        self.done("export", f"{bundle.export_id} (adapter)", export_id=bundle.export_id)

    # ---- the whole flight -----------------------------------------------------------------
    def fly(self) -> AutopilotResult:
        self.event("info", f"autopilot plan for {self.locator} as {self.task}"
                   + (" (strict)" if self.strict else ""),
                   {"locator": self.locator, "task": self.task, "base": self.base,
                    "strict": self.strict, "steps": list(STEPS), "max_drop_share": self.max_drop_share,
                    "train": self.train_overrides})
        try:
            with parent_run(self.run_id):
                if self.task not in TASK_PROFILES:
                    raise Refused("autopilot_no_safe_plan",
                                  f"no handler for task {self.task!r}; choose one of "
                                  f"{', '.join(TASK_PROFILES)}")
                if self.base:
                    self.train_overrides.setdefault("base", self.base)
                shape, field_map, options, _ = self.introspect()
                self.map(shape, field_map, options)
                self.clean()
                self.prepare()
                config = self.preflight()
                run_id = self.train(config)
                if self.evaluate(run_id):
                    self.export(run_id)
                else:
                    self.skipped("export", "the gates did not pass")
        except Refused as exc:
            self.event("error", f"autopilot stopped: {exc.message}",
                       {"message": exc.message, **exc.payload}, reason_code=exc.code)
            return self.result("refused", {"code": exc.code, "message": exc.message})
        self.event("info", f"autopilot finished: {len(self.steps)} steps, {len(self.repairs)} repairs",
                   {"outputs": self.outputs, "repairs": [r.to_dict() for r in self.repairs]})
        return self.result("completed", None)

    def result(self, status: str, refusal: dict[str, str] | None) -> AutopilotResult:
        return AutopilotResult(run_id=self.run_id, status=status, locator=self.locator,
                               task=self.task, strict=self.strict, steps=tuple(self.steps),
                               repairs=tuple(self.repairs), refusal=refusal, outputs=dict(self.outputs))


def plan(locator: str, task: str, *, strict: bool = False, base: str | None = None) -> list[str]:
    """The steps autopilot will take, in words (printed before it runs)."""
    return [
        f"introspect {locator}: the best shape that feeds the {task} handler, at ≥ {FORCE_THRESHOLD:.2f}",
        f"map: dry run, then commit (drops rejected rows only up to {MAX_DROP_SHARE:.0%})",
        "clean: normalise, dedupe, score, mask PII",
        f"prepare: {task} splits (train/eval, gold kept apart)" + (f", base {base}" if base else ""),
        "preflight: dependencies, model, memory fit (a smaller batch if it does not fit), gates",
        "train: the planned run",
        "eval: score the run against the eval pack's gates",
        "export: an adapter bundle, only when the gates pass",
    ] + (["strict: every repair is refused"] if strict else [])


def autopilot(project: Project, locator: str, task: str, *, base: str | None = None,
              strict: bool = False, max_drop_share: float = MAX_DROP_SHARE,
              train: dict[str, Any] | None = None, probe: bool = True,
              max_memory_mb: float | None = None, progress: Progress | None = None) -> AutopilotResult:
    """Run every stage from a locator to an evaluated (and, when the gates pass, exported) model.

    Returns the result with status ``completed`` or ``refused`` (with the refusal's reason code
    and what the person must decide); a refusal is also an ``autopilot`` error event.
    """
    if task in SHAPE_TASK_PROFILE and task not in TASK_PROFILES:
        task = SHAPE_TASK_PROFILE[task]  # a shape name means the handler it feeds
    pilot = Pilot(project, locator, task, base=base, strict=strict, max_drop_share=max_drop_share,
                  train=train or {}, probe=probe, max_memory_mb=max_memory_mb, progress=progress)
    return pilot.fly()
