"""The training loop: one engine for every task handler.

AdamW with linear warmup/decay over packed, length-bucketed batches; a per-step trace; atomic
checkpoints; resume with the same weights, optimizer, scheduler, RNG and data order; cancel
within one step, a wallclock budget, an RSS watchdog; and one RunEvent per run outcome.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..common import atomic_write_json, atomic_write_text
from ..contracts.base import Contract, contract
from .attention import use_fast_attention
from .base_model import resolve_model_path
from .checkpoint import latest_checkpoint, save_checkpoint
from .config import TrainConfig
from .device import pick_device
from .distributed import Dist, from_env, params_checksum, shard
from .embedding_rows import EmbeddingRows
from .fused_lora import use_fused_lora
from .handlers import get_handler
from .handlers.lora import count_params
from .packing import plan_epoch
from .sharding import Replicated, choose
from .speed import (
    adamw_options,
    compile_model,
    resolve_precision,
    tune_malloc,
    use_fast_dropout,
)
from .trace import TraceWriter

if TYPE_CHECKING:

    from ..project import Project

CANCEL_FILE = "CANCEL"  # touch runs/<id>/CANCEL to stop a run from another process
REPLICAS_DIR = "replicas"  # multi-rank runs: rank-<r>.sha256 of each rank's final weights


class TrainingStopped(Exception):
    """The run stopped early on purpose; ``reason_code`` names why."""

    reason_code = "training_runtime_error"
    status = "failed"


class TrainingCancelled(TrainingStopped):
    reason_code = "training_cancelled"
    status = "cancelled"


class TrainingTimeout(TrainingStopped):
    reason_code = "training_timeout"
    status = "timeout"


class TrainingOOM(TrainingStopped):
    reason_code = "training_oom"
    status = "oom"


# the order ranks agree on when they stop together (the highest code wins)
STOP_KINDS: tuple[type[TrainingStopped], ...] = (TrainingCancelled, TrainingTimeout, TrainingOOM)


@contract
class TrainResult(Contract):
    run_id: str
    status: str  # completed | cancelled | timeout | oom | failed
    reason_code: str | None
    steps: int
    total_steps: int
    final_train_loss: float | None
    eval: dict[str, Any]
    run_dir: str
    adapter_dir: str | None
    last_checkpoint: str | None
    resumed_from_step: int | None
    seconds: float
    real_tokens_per_s: float
    error: str | None = None


def new_run_id() -> str:
    return f"exp-{secrets.token_hex(4)}"


class RssWatchdog:
    """Samples this process's RSS in a thread; the loop checks ``tripped`` between micro-steps.

    CPU training has no allocator error before the kernel's OOM killer ends the process, so the
    run stops itself while it can still record why and keep its checkpoint.
    """

    def __init__(self, limit_mb: float, interval: float = 0.05) -> None:
        import psutil

        self.limit = limit_mb * 1024 * 1024
        self.interval = interval
        self.peak = 0
        self.tripped_at: int | None = None
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-watchdog", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> int:
        rss = self._proc.memory_info().rss
        self.peak = max(self.peak, rss)
        if rss > self.limit and self.tripped_at is None:
            self.tripped_at = rss
        return rss

    def check(self) -> None:
        self.sample()
        if self.tripped_at is not None:
            raise TrainingOOM(
                f"RSS {self.tripped_at / 2**20:.0f} MB passed the watchdog limit "
                f"{self.limit / 2**20:.0f} MB; lower batch_size/max_length or use method='lora'"
            )

    def __enter__(self) -> RssWatchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=1)


def default_rss_limit_mb() -> float:
    import psutil

    now = psutil.Process().memory_info().rss
    return (now + 0.9 * psutil.virtual_memory().available) / 2**20


def _linear_schedule(warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def _emit(
    project: Project, severity: str, reason: str | None, run_id: str, summary: str, payload: dict[str, Any]
) -> None:
    project.events.append(
        stage="training",
        severity=severity,
        reason_code=reason,
        run_id=run_id,
        summary=summary,
        payload=payload,
    )


class _Run:
    """State of one run; ``train()`` below is the public door."""

    def __init__(
        self,
        project: Project,
        config: TrainConfig,
        run_id: str,
        cancel: Callable[[], bool] | None,
        progress: Callable[[int, int, str], None] | None,
    ) -> None:
        self.project, self.config, self.run_id = project, config, run_id
        self.dir = project.run_dir(run_id)
        self.ckpt_root = self.dir / "checkpoints"
        self.cancel, self.progress = cancel, progress
        self.step = 0
        self.total_steps = 0
        self.last_loss: float | None = None
        self.resumed_from: int | None = None
        self.real_tokens = 0
        self.train_seconds = 0.0
        self.eval: dict[str, Any] = {}
        self.started = time.monotonic()
        self.dist = Dist()
        self.sharding: Replicated = Replicated(self.dist)
        self.together = True  # False once a rank fails on its own (see _failure)
        self.device: Any = None
        self.steps_note: str | None = None  # how max_steps overrode epochs, said in plan and event
        self.probe = False  # preflight's timing run: recorded as a probe, not a training completion
        self.lineage: dict[str, Any] = {}  # manifest_sha256 / config_ids / import_ids, into plan.json

    # ---- stop checks (called between micro-batches: "within one step") -----------------
    def _local_stop(self) -> TrainingStopped | None:
        if self.cancel is not None and self.cancel():
            return TrainingCancelled(f"cancelled at step {self.step}")
        if (self.dir / CANCEL_FILE).exists():
            return TrainingCancelled(f"cancelled at step {self.step} ({CANCEL_FILE} file)")
        budget = self.config.max_seconds
        if budget is not None and time.monotonic() - self.started > budget:
            return TrainingTimeout(f"wallclock budget of {budget:g} s used up at step {self.step}")
        try:
            self.watchdog.check()
        except TrainingOOM as exc:
            return exc
        return None

    def check_stop(self, step_start: bool = False) -> None:
        exc = self._local_stop()
        if self.dist.active:
            if not step_start:
                return  # one rank cannot leave mid-step alone: the others would wait for it
            mine = STOP_KINDS.index(type(exc)) + 1 if exc is not None else 0
            agreed = self.dist.max_code(mine, self.device)
            if agreed and agreed != mine:
                kind = STOP_KINDS[agreed - 1]
                exc = kind(f"{kind.status} at step {self.step} (asked on another rank)")
        if exc is not None:
            raise exc

    def run(self, train_rows: Sequence[dict], eval_rows: Sequence[dict] | None, resume: bool) -> TrainResult:
        """setup -> steps (each maybe followed by an eval and a checkpoint) -> final eval -> save."""
        self._setup(train_rows, resume)
        cfg = self.config
        try:
            while self.step < self.total_steps:
                self.check_stop(step_start=True)
                self._trace(self._step())
                if self.progress is not None and self.dist.main:
                    self.progress(self.step, self.total_steps, f"loss {self.last_loss:.4f}")
                if eval_rows and cfg.eval_every and self.step % cfg.eval_every == 0:
                    self._evaluate(eval_rows)
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
        except (TrainingCancelled, TrainingTimeout):
            self.save_checkpoint()  # resumable from exactly where it stopped
            raise
        if eval_rows:
            self._evaluate(eval_rows)
        return self._finish()

    # ---- setup: device, handler, examples, model, optimizer, schedule, resume, plan ----------
    def _setup(self, train_rows: Sequence[dict], resume: bool) -> None:
        import torch

        cfg = self.config
        torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
        self.malloc_reuse = tune_malloc() if cfg.malloc_reuse else False
        self.device = device = pick_device(cfg.device)
        self.dist.start(device)
        self.sharding = choose(cfg, self.dist)
        self.handler = get_handler(cfg.task_profile)
        self.handler.bind(self.project, self.dir)  # handlers that read project files (RAG, teacher)
        model_path = resolve_model_path(cfg.base, cfg.task_profile)
        self.handler.setup(model_path, train_rows, cfg)
        self.examples = [e for e in self.handler.encode(train_rows) if e is not None]
        if not self.examples:
            raise ValueError(f"none of the {len(train_rows)} training rows could be encoded")
        model = self.handler.build_model(cfg).to(device)
        self.precision = resolve_precision(cfg.precision, device)
        # inductor fuses its own dropout RNG; eager CPU runs take the fast mask (train/speed.py)
        fast = cfg.fast_dropout and not cfg.compile
        self.fast_dropout = use_fast_dropout(model, device) if fast else 0
        # its dropout too, and under CPU autocast attention in fp32 (train/attention.py)
        self.fast_attention = use_fast_attention(model, device, self.precision != "fp32") if fast else 0
        # FSDP2 swaps the blocks' weights for shards between forwards: peft's forward there
        fused = cfg.fused_lora and not cfg.compile and self.sharding.name != "fsdp"
        self.fused_lora = use_fused_lora(model) if fused else 0
        self.model = self.sharding.prepare(model)
        self.model.train()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        # embedding tables by rows: one process (ranks would all-reduce dense grads, FSDP shards
        # them), eager mode, no fp16 loss scaling (its skipped steps are the optimizer's)
        sparse = (cfg.sparse_embedding_grads and self.sharding.name == "none" and not cfg.compile
                  and self.precision != "fp16")
        self.embedding_rows = EmbeddingRows(self.model, self.params) if sparse else None
        auto = self.sharding.optimizer_options(self.params, device)
        self.optimizer = torch.optim.AdamW(
            self.params, lr=cfg.lr, weight_decay=cfg.weight_decay, **adamw_options(cfg.adamw, auto)
        )
        if cfg.compile:
            compile_model(self.model)  # in place: state-dict keys (checkpoints, resume) unchanged
        self._schedule(len(self.examples))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _linear_schedule(cfg.warmup_steps, self.total_steps)
        )
        trace_at = self._resume() if resume else None
        self._write_plan(model_path, self.model, len(train_rows), len(self.examples), device, resume)
        if self.dist.main:
            self.trace = TraceWriter(self.dir / "trace.jsonl", truncate_at=trace_at)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision == "fp16")
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        self.plans: dict[int, list[list[int]]] = {}

    def _schedule(self, n_examples: int) -> None:
        """Steps per epoch (this rank's share of the batches) and the run's total steps."""
        cfg = self.config
        batches_per_epoch = math.ceil(n_examples / cfg.batch_size)
        if self.dist.active:  # each rank trains its share of every epoch's batches
            batches_per_epoch = math.ceil(batches_per_epoch / self.dist.world)
        self.steps_per_epoch = math.ceil(batches_per_epoch / cfg.grad_accum)
        self.total_steps = cfg.total_steps(self.steps_per_epoch)
        self.steps_note = cfg.steps_note(self.steps_per_epoch)

    def _resume(self) -> int | None:
        """Restore the last checkpoint (weights, optimizer, schedule, RNG, counters); its trace offset."""
        last = latest_checkpoint(self.ckpt_root)
        if last is None:
            return None
        meta = self.sharding.restore(last, self.model, self.optimizer, self.scheduler)
        self.step = self.resumed_from = int(meta["step"])
        self.real_tokens = int(meta.get("real_tokens", 0))
        self.train_seconds = float(meta.get("train_seconds", 0.0))
        self.last_loss = meta.get("loss")
        return int(meta["trace_offset"])

    # ---- one optimizer step -----------------------------------------------------------------
    def _micro_batches(self) -> tuple[int, int, list[list[int]]]:
        """(epoch, step within it, this step's micro-batches of example indices)."""
        cfg = self.config
        epoch, within = divmod(self.step, self.steps_per_epoch)
        if epoch not in self.plans:
            # every rank builds the same plan (same seed) and keeps its share
            lengths = [e.length for e in self.examples]
            full = plan_epoch(lengths, cfg.batch_size, seed=cfg.seed, epoch=epoch, strategy=cfg.batching,
                              window_batches=cfg.bucket_window)
            self.plans = {epoch: shard(full, self.dist.rank, self.dist.world)}
        return epoch, within, self.plans[epoch][within * cfg.grad_accum : (within + 1) * cfg.grad_accum]

    def _step(self) -> dict[str, Any]:
        """Forward/backward over the step's micro-batches, one optimizer update; its trace line."""
        import torch

        cfg, handler, model, device = self.config, self.handler, self.model, self.device
        epoch, within, micro = self._micro_batches()
        t0 = time.perf_counter()
        loss_sum, count, tokens, real, samples = 0.0, 0, 0, 0, 0
        for k, ids in enumerate(micro):
            self.check_stop()
            batch = handler.collate([self.examples[i] for i in ids], cfg.packing)
            tokens, real = tokens + batch["tokens"], real + batch["real_tokens"]
            samples += len(ids)
            batch = {k: (v.to(device) if hasattr(v, "to") else v) for k, v in batch.items()}
            with torch.autocast(device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
                loss, n = handler.loss(model, batch)
            self.sharding.before_backward(model, last=k == len(micro) - 1)
            self.scaler.scale(loss).backward()
            loss_sum, count = loss_sum + float(loss.detach()), count + n
            del batch, loss
        if self.embedding_rows is not None:
            self.embedding_rows.coalesce()
        if self.dist.active:  # sum before unscaling so every rank sees the same grads
            self.sharding.sync_grads(self.params)
            sums = self.dist.sum_numbers([loss_sum, count, tokens, real, samples], device)
            loss_sum = sums[0]
            count, tokens, real, samples = (int(v) for v in sums[1:])
        norm, lr = self._update(count)
        seconds = time.perf_counter() - t0
        self.step += 1
        self.train_seconds += seconds
        self.real_tokens += real
        self.last_loss = loss_sum / max(count, 1)
        return {
            **handler.step_metrics(),  # per-step parts of the loss a handler tracks (distillation)
            "step": self.step,
            "epoch": epoch + (within + 1) / self.steps_per_epoch,
            "loss": self.last_loss,
            "lr": lr,
            "grad_norm": norm,
            "tokens": tokens,
            "real_tokens": real,
            "tokens_per_s": real / seconds if seconds > 0 else None,
            "samples": samples,
            "split": "train",
        }

    def _update(self, count: int) -> tuple[float, float]:
        """Average the summed grads over ``count``, clip, step optimizer and schedule; (norm, lr)."""
        optimizer, scaler = self.optimizer, self.scaler
        scaler.unscale_(optimizer)
        # summed losses: the clip divides by the step's true count in the same pass
        norm = self.sharding.clip(self.params, self.config.grad_clip or float("inf"), max(count, 1))
        if self.embedding_rows is not None:
            self.embedding_rows.step(optimizer)  # the tables' used rows; the optimizer skips them
        scaler.step(optimizer)
        scaler.update()
        lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        return norm, lr

    # ---- the end: weights out, replicas checked ----------------------------------------------
    def _finish(self) -> TrainResult:
        adapter = self.dir / "adapter"
        self.sharding.save(self.handler, self.config, self.model, adapter)  # every rank takes part
        if self.dist.active:
            # evidence that data-parallel ranks ended with the same weights: one checksum per rank
            replicas = self.dir / REPLICAS_DIR
            replicas.mkdir(parents=True, exist_ok=True)
            checksum = params_checksum(self.sharding.everywhere(self.model))
            atomic_write_text(replicas / f"rank-{self.dist.rank}.sha256", checksum)
        return self._result("completed", None, adapter_dir=str(adapter))

    # ---- pieces ---------------------------------------------------------------------------
    def _trace(self, line: dict[str, Any]) -> None:
        if self.dist.main:  # one trace per run, written by rank 0
            self.trace.write(line)

    def _evaluate(self, eval_rows: Sequence[dict]) -> None:
        if not (self.dist.main or self.sharding.evaluates_on_every_rank):
            return  # rank 0 scores; the others meet it at the next step's collective
        rows = list(eval_rows)[: self.config.eval_max_rows]
        # sharded: every rank runs the same forwards (each gathers blocks from all ranks)
        self.eval = self.handler.score(self.model, rows)
        self._trace({"step": self.step, "split": "eval", **self.eval})

    def save_checkpoint(self) -> Path | None:
        if getattr(self, "model", None) is None or self.step == 0:
            return None
        # collective: every rank hands in its shard and its RNG state; rank 0 writes
        weights, optim, rngs = self.sharding.gather(self.model, self.optimizer)
        if not self.dist.main:
            return None
        self.trace.sync()
        meta = {
            "run_id": self.run_id,
            "trace_offset": self.trace.offset(),
            "loss": self.last_loss,
            "real_tokens": self.real_tokens,
            "train_seconds": self.train_seconds,
        }
        state = {"optimizer": optim, "scheduler": self.scheduler.state_dict(), "rng": rngs[0]}
        if self.dist.active:
            state["rng_ranks"] = rngs
        return save_checkpoint(self.ckpt_root, self.step, weights, state, meta, self.config.keep_checkpoints)

    def _write_plan(
        self, model_path: Path, model: Any, n_rows: int, n_examples: int, device: Any, resume: bool
    ) -> None:
        shards = self.sharding.name
        plan = {
            "run_id": self.run_id,
            "task_profile": self.config.task_profile,
            "handler": type(self.handler).__name__,
            "base_model_path": str(model_path),
            "config": self.config.to_dict(),
            "handler_state": self.handler.state(),
            "params": count_params(model),
            "rows": n_rows,
            "examples": n_examples,
            "total_steps": self.total_steps,
            "device": str(device),
            "backend": f"torch-{device.type}" + (f"-{shards}" if shards != "none" else ""),
            "world_size": self.dist.world,
            "sharding": shards,
            # the speed levers as run (precision "auto" resolved for this device)
            "speed": {"precision": self.precision, "compile": self.config.compile,
                      "adamw": self.config.adamw, "fast_dropout": self.fast_dropout,
                      "fast_attention_dropout": self.fast_attention, "fused_lora": self.fused_lora,
                      "malloc_reuse": self.malloc_reuse, "fused_lm_loss": self.config.fused_lm_loss,
                      "sparse_embedding_grads": len(self.embedding_rows.tables)
                      if self.embedding_rows else 0},
            **self.lineage,
        }
        if self.sharding.note:
            plan["sharding_note"] = self.sharding.note
        if self.steps_note:
            plan["steps_note"] = self.steps_note
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.dist.main:
            return
        if resume and (self.dir / "plan.json").exists():
            return  # the plan is what was asked first; a resume carries on with it
        atomic_write_json(self.dir / "plan.json", plan)

    def _result(
        self, status: str, reason: str | None, *, adapter_dir: str | None = None, error: str | None = None
    ) -> TrainResult:
        last = latest_checkpoint(self.ckpt_root)
        return TrainResult(
            run_id=self.run_id,
            status=status,
            reason_code=reason,
            steps=self.step,
            total_steps=self.total_steps,
            final_train_loss=self.last_loss,
            eval=self.eval,
            run_dir=str(self.dir),
            adapter_dir=adapter_dir,
            last_checkpoint=str(last) if last else None,
            resumed_from_step=self.resumed_from,
            seconds=time.monotonic() - self.started,
            real_tokens_per_s=self.real_tokens / self.train_seconds if self.train_seconds else 0.0,
            error=error,
        )


def train(
    project: Project,
    config: TrainConfig,
    train_rows: Sequence[dict],
    eval_rows: Sequence[dict] | None = None,
    *,
    run_id: str | None = None,
    resume: bool = False,
    cancel: Callable[[], bool] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    probe: bool = False,
    lineage: dict[str, Any] | None = None,
) -> TrainResult:
    """Train on rows ``{"record": …}`` (as prepare writes them) and record the outcome.

    Never raises for a run that started: the outcome is the result's ``status`` plus one
    ``training`` RunEvent. ``resume=True`` with an existing ``run_id`` continues from its last
    checkpoint. ``cancel`` is polled between micro-batches. ``probe=True`` (preflight's timing
    run) records the outcome as a probe, not as a finished training run. ``lineage`` (the data the
    rows came from: ``manifest_sha256``, ``config_ids``, ``import_ids``) is written into plan.json.
    """
    config.check()
    run_id = run_id or new_run_id()
    run = _Run(project, config, run_id, cancel, progress)
    run.probe = probe
    run.lineage = dict(lineage or {})
    run.dist = from_env()
    limit = config.max_rss_mb or default_rss_limit_mb()
    try:
        try:
            with RssWatchdog(limit) as run.watchdog:
                result = run.run(train_rows, eval_rows, resume)
        except Exception as exc:  # MemoryError included: every failure becomes an outcome + event
            result = _failure(run, exc)
        finally:
            if getattr(run, "trace", None) is not None:
                run.trace.close()
        _record_success(run, result)
    finally:
        # an error may leave the other ranks inside a collective: no barrier then; the
        # non-zero exit makes the launcher stop them
        run.dist.close(barrier=run.together)
    return result


def _record_success(run: _Run, result: TrainResult) -> None:
    if not run.dist.main:
        return  # one RunEvent per run, from rank 0
    project, run_id = run.project, run.run_id
    if result.status == "completed":
        summary = (
            f"preflight probe: {result.steps} training steps timed for the plan (weights not kept)"
            if run.probe
            else f"training finished after {result.steps} steps"
        )
        _emit(
            project,
            "info",
            None,
            run_id,
            summary,
            {
                "kind": "probe" if run.probe else "run",
                "experiment_id": run_id,
                "backend": _backend(run),
                "final_train_loss": result.final_train_loss,
                "eval": result.eval,
                "adapter_dir": result.adapter_dir,
                # Caveats a handler wants on the record (e.g. a randomly initialised encoder).
                "notes": list(run.handler.state().get("notes", []))
                + [note for note in (run.sharding.note, run.steps_note) if note],
            },
        )


def _backend(run: _Run) -> str:
    plan = run.dir / "plan.json"
    if plan.exists():
        return json.loads(plan.read_text(encoding="utf-8")).get("backend", "torch")
    return "torch"


def _failure(run: _Run, exc: BaseException) -> TrainResult:
    import torch

    if isinstance(exc, TrainingStopped):
        reason, status = exc.reason_code, exc.status
    elif isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        reason, status = "training_oom", "oom"
    else:
        reason, status = "training_runtime_error", "failed"
    # a cancel is someone's wish, not a fault; everything else is an error with its code
    severity = "warning" if reason == "training_cancelled" else "error"
    result = run._result(status, reason, error=f"{type(exc).__name__}: {exc}")
    payload = {
        "experiment_id": run.run_id,
        "step": run.step,
        "total_steps": run.total_steps,
        "error": result.error,
        "last_checkpoint": result.last_checkpoint,
    }
    if reason == "training_runtime_error":
        payload["traceback"] = "".join(traceback.format_exception(exc))
    # a stop every rank agreed on keeps the ranks together; anything else may have left
    # the others inside a collective
    run.together = isinstance(exc, TrainingStopped)
    if not run.dist.main:
        return result
    _emit(run.project, severity, reason, run.run_id, f"training stopped: {result.error}", payload)
    return result
