"""Coach stage ``training``: preflight blockers, failed runs, and what the loss traces say."""

from __future__ import annotations

from typing import Any

from ..contracts.coach import Suggestion
from .base import GENERATORS, navigate, ordered, playbook, say
from .facts import Facts, read_json

RISING_EVALS = 3  # eval loss rising this many evaluations in a row while train loss falls


def _is_preflight(ev: dict[str, Any]) -> bool:
    payload = ev.get("payload") or {}
    return "mode" in payload and "blockers" in payload


def _changes_text(changes: dict[str, Any]) -> str:
    names = {"batch_size": "batch", "grad_accum": "grad_accum", "max_length": "max_length",
             "method": "method", "precision": "precision"}
    return " with ".join(f"{names.get(k, k)} {v}" for k, v in changes.items())


def _preflight(ev: dict[str, Any]) -> list[Suggestion]:
    payload, run_id = ev.get("payload") or {}, ev.get("run_id")
    out = []
    blocked = ev.get("severity") == "error"
    for b in payload.get("blockers") or []:
        code, suggestion = b.get("code"), b.get("suggestion") or {}
        changes = suggestion.get("changes") or {}
        if code == "memory_does_not_fit" and changes:
            out.append(say("critical", f"The run does not fit: {_changes_text(changes)} does",
                           f"{b.get('message')}. {b.get('fix')}.",
                           playbook(f"Re-run preflight with {_changes_text(changes)}", "preflight",
                                    config=changes, run_id=run_id)))
        elif code == "memory_does_not_fit" and suggestion.get("runtime"):
            out.append(say("critical", "The run fits only sharded (fsdp)", f"{b.get('message')}. "
                           f"{b.get('fix')}.", playbook("Re-run preflight with fsdp", "preflight",
                                                        runtime=suggestion["runtime"])))
        else:
            out.append(say("critical" if blocked else "warning",
                           f"Preflight {'blocked' if blocked else 'warned'}: {code}",
                           f"{b.get('message')}. Fix: {b.get('fix')}.",
                           navigate("Open preflight", "preflight", run_id=run_id, code=code)))
    warns = [w for w in payload.get("warnings") or [] if not str(w).startswith("gold_set")]
    if warns and not blocked:
        out.append(say("info", f"Preflight of {run_id} passed with {len(warns)} warning(s)",
                       f"Warnings: {', '.join(map(str, warns))}.",
                       navigate("Open preflight", "preflight", run_id=run_id)))
    return out


def _run_config(facts: Facts, run_id: str) -> dict[str, Any]:
    plan = read_json(facts.project.run_dir(run_id) / "plan.json") or {}
    return dict(plan.get("config") or {})


def _failure(facts: Facts, ev: dict[str, Any]) -> Suggestion | None:
    code, run_id = ev.get("reason_code"), str(ev.get("run_id"))
    payload = ev.get("payload") or {}
    step, total = payload.get("step"), payload.get("total_steps")
    ckpt = payload.get("last_checkpoint")
    where = f"at step {step} of {total}" if step is not None else ""
    if code == "training_oom":
        cfg = _run_config(facts, run_id)
        batch, accum = int(cfg.get("batch_size", 16)), int(cfg.get("grad_accum", 1))
        if batch > 1:
            new = {"batch_size": max(1, batch // 2), "grad_accum": accum * 2}
            return say("critical", f"Run {run_id} ran out of memory {where}",
                       f"{payload.get('error')}. Batch {batch} × grad_accum {accum}: halve the batch "
                       f"and double grad_accum (batch {new['batch_size']} × {new['grad_accum']}) "
                       "to keep the same effective batch.",
                       playbook(f"Retrain with batch {new['batch_size']} × grad_accum "
                                f"{new['grad_accum']}", "retrain", config=new, run_id=run_id))
        return say("critical", f"Run {run_id} ran out of memory {where} at batch 1",
                   f"{payload.get('error')}. Use method lora or a shorter max_length.",
                   playbook("Retrain with LoRA", "retrain", config={"method": "lora"}, run_id=run_id))
    if code in ("training_timeout", "training_cancelled", "training_runtime_error") and ckpt:
        severity = "critical" if code == "training_runtime_error" else "warning"
        return say(severity, f"Run {run_id} stopped {where} ({code})",
                   f"{payload.get('error')}. Its last checkpoint is {ckpt.split('/')[-1]}; resume "
                   "from it with the same data order.",
                   playbook(f"Resume {run_id} from its checkpoint", "resume", run_id=run_id))
    if code in ("training_timeout", "training_cancelled", "training_runtime_error"):
        error = str(payload.get("error") or ev.get("summary"))
        return say("critical" if code == "training_runtime_error" else "warning",
                   f"Run {run_id} stopped {where} ({code}) without a checkpoint",
                   f"{error.splitlines()[0][:300]}. Set checkpoint_every so a stop is resumable.",
                   navigate("Open the run", "runs", run_id=run_id))
    if code == "training_dispatch_error":
        return say("critical", f"Run {run_id} could not be dispatched", str(ev.get("summary")),
                   navigate("Open preflight", "preflight", run_id=run_id))
    return None


def trace_advice(run_id: str, trace: list[dict[str, Any]], checkpoints: list[int]) -> list[Suggestion]:
    """Overfitting (eval loss up while train loss down) and a train loss that did not fall."""
    out = []
    evals = [t for t in trace if t.get("split") == "eval" and t.get("eval_loss", t.get("loss")) is not None]
    trains = [t for t in trace if t.get("split") == "train" and t.get("loss") is not None]
    if len(evals) > RISING_EVALS:
        losses = [float(t.get("eval_loss", t.get("loss"))) for t in evals]
        tail = losses[-(RISING_EVALS + 1):]
        rising = all(b > a for a, b in zip(tail, tail[1:], strict=False))
        start = int(evals[-(RISING_EVALS + 1)]["step"])
        train_then = [float(t["loss"]) for t in trains if int(t["step"]) >= start]
        if rising and len(train_then) >= 2 and train_then[-1] < train_then[0]:
            best = int(evals[losses.index(min(losses))]["step"])
            at = max((c for c in checkpoints if c <= best), default=None)
            stop = f"step {at}'s checkpoint" if at is not None else f"step {best}"
            out.append(say("warning", f"Eval loss rose for the last {RISING_EVALS} evaluations while "
                           f"train loss fell — stop at {stop}",
                           f"Run {run_id}: eval loss {tail[0]:.3f} → {tail[-1]:.3f}, train loss "
                           f"{train_then[0]:.3f} → {train_then[-1]:.3f}. The lowest eval loss "
                           f"({min(losses):.3f}) was at step {best}: the model is overfitting.",
                           playbook(f"Retrain stopping at step {best}", "retrain",
                                    config={"max_steps": best}, run_id=run_id)))
    if len(trains) >= 4:
        first, last = float(trains[0]["loss"]), float(trains[-1]["loss"])
        if last >= first * 0.98:
            out.append(say("warning", f"Train loss did not fall in {run_id}: {first:.3f} → {last:.3f}",
                           f"Over {len(trains)} steps the loss moved less than 2%. Try a higher "
                           "learning rate or more steps.",
                           navigate("Open the run", "runs", run_id=run_id)))
    return out


@GENERATORS.register("training")
def training_suggestions(facts: Facts) -> list[Suggestion]:
    if facts.manifest is None:
        return [say("info", "Nothing is prepared to train on yet",
                    "Prepare writes the manifest (train/eval/gold splits) that preflight and "
                    "training read.", playbook("Run prepare", "prepare"))]
    events = facts.events("training")  # newest first
    out: list[Suggestion] = []
    preflights = [e for e in events if _is_preflight(e)]
    if preflights:
        out.extend(_preflight(preflights[0]))
    latest_by_run: dict[str, dict[str, Any]] = {}
    for ev in events:
        if not _is_preflight(ev) and ev.get("run_id") and "/probe" not in str(ev["run_id"]):
            latest_by_run.setdefault(str(ev["run_id"]), ev)
    for ev in list(latest_by_run.values())[:5]:
        failed = _failure(facts, ev) if ev.get("reason_code") else None
        if failed is not None:
            out.append(failed)
    completed = [r for r, ev in latest_by_run.items() if not ev.get("reason_code")]
    if completed:
        run_id = completed[0]
        out.extend(trace_advice(run_id, facts.trace(run_id), facts.checkpoints(run_id)))
        if not out:
            ev = latest_by_run[run_id]
            loss = (ev.get("payload") or {}).get("final_train_loss")
            out.append(say("info", f"Run {run_id} finished" + (f" at train loss {loss:.3f}"
                                                               if isinstance(loss, float) else ""),
                           "Nothing in its trace needs attention; evaluate it next.",
                           navigate("Evaluate the run", "eval", run_id=run_id)))
    elif not preflights and not latest_by_run:
        counts = (facts.manifest.get("counts") or {})
        out.append(say("info", f"Ready to check a run on {counts.get('train', 0)} train rows",
                       "Preflight checks dependencies, the model, memory fit and gates, probes two "
                       "real steps and writes the train plan.", playbook("Run preflight", "preflight")))
    elif preflights and preflights[0].get("severity") != "error" and not latest_by_run:
        run_id = preflights[0].get("run_id")
        out.append(say("info", f"Preflight {run_id} passed; start training",
                       "The plan is written; the run follows it.",
                       playbook("Start training", "train", run_id=run_id)))
    return ordered(out)
