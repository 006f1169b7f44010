"""The `accelerate` config and launch command a plan carries for scale-out.

Layouts: one process (CPU or one GPU); DDP over every visible GPU (and over several machines
when the runtime config names them); FSDP when the model's weights, gradients and optimizer
state do not fit on one GPU but do when sharded, or when the runtime asks for it; on CPU,
several processes talking over gloo (the same code path as multi-GPU DDP, testable on a
laptop), with FSDP on top when ``fsdp = true``.

Every layout starts through ``accelerate launch --config_file``. For several CPU processes the
config names accelerate's multi-process launcher (``MULTI_GPU`` or ``FSDP`` with
``use_cpu: false``): accelerate hands those to torch's elastic launcher, which starts the ranks
whatever the device, while ``use_cpu: true`` would start one process unless mpirun is
installed. The engine then picks gloo itself on a machine without CUDA. Sharding is the
engine's own (``--set fsdp=true``); accelerate's FSDP settings describe it for the record.

Runtime settings come from the project's ``[runtime]`` table: ``processes`` (CPU processes;
default 1, since one process already uses every core through torch's threads: set 2+ to
run DDP over gloo), ``num_machines``, ``machine_rank``, ``main_process_ip``, ``main_process_port``,
``fsdp`` (true to shard with FSDP across the processes or GPUs).
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from ..contracts.preflight import HardwareInfo, MemoryEstimate

DEFAULT_CPU_PROCESSES = 1
DEFAULT_PORT = 29500
MIXED = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


def choose_layout(
    device: str, hardware: HardwareInfo, runtime: dict[str, Any], estimate: MemoryEstimate | None
) -> dict[str, Any]:
    """Process layout: kind (single | multi-cpu | ddp | fsdp), processes, machines, threads."""
    machines = int(runtime.get("num_machines", 1) or 1)
    fsdp = bool(runtime.get("fsdp", False))
    if device == "cuda" and hardware.cuda_devices:
        gpus = len(hardware.cuda_devices)
        sharded = estimate is not None and int(estimate.basis.get("fsdp_shards", 1) or 1) > 1
        if estimate is not None and (sharded or not estimate.fits) and gpus * machines > 1:
            # sharding splits weights, gradients and optimizer state across the GPUs
            fsdp = True
        many = gpus * machines > 1
        kind = "fsdp" if fsdp and many else ("ddp" if many else "single")
        return {"kind": kind, "device": device, "processes": gpus * machines,
                "machines": machines,
                "threads_per_process": max(1, hardware.cpu_cores // max(gpus, 1))}
    wanted = int(runtime.get("processes", DEFAULT_CPU_PROCESSES) or 1)
    per_machine = max(1, min(wanted, hardware.cpu_cores))
    many = per_machine * machines > 1
    # fsdp on one process has nothing to shard across: the run trains unsharded (and says so)
    kind = ("fsdp" if fsdp else "multi-cpu") if many else "single"
    return {"kind": kind, "device": "cpu", "processes": per_machine * machines,
            "machines": machines, "threads_per_process": max(1, hardware.cpu_cores // per_machine)}


def accelerate_config(layout: dict[str, Any], precision: str, runtime: dict[str, Any],
                      no_split_module: str | None = None) -> dict[str, Any]:
    """The dict `accelerate launch --config_file` reads (ClusterConfig fields)."""
    kind = layout["kind"]
    cpu = layout.get("device", "cpu") == "cpu"
    distributed = {"single": "NO", "multi-cpu": "MULTI_GPU", "ddp": "MULTI_GPU",
                   "fsdp": "FSDP"}[kind]
    cfg: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": distributed,
        "mixed_precision": MIXED.get(precision, "no"),
        # several CPU ranks need accelerate's multi-process launcher (see the module doc)
        "use_cpu": bool(cpu) and kind == "single",
        "debug": False,
        "num_processes": layout["processes"],
        "num_machines": layout["machines"],
        "machine_rank": int(runtime.get("machine_rank", 0) or 0),
        "main_training_function": "main",
        "rdzv_backend": "static",
        "same_network": True,
        "dynamo_config": {"dynamo_backend": "NO"},
    }
    if layout["machines"] > 1:
        cfg["main_process_ip"] = str(runtime.get("main_process_ip", "127.0.0.1"))
    if layout["machines"] > 1 or runtime.get("main_process_port"):
        cfg["main_process_port"] = int(runtime.get("main_process_port") or DEFAULT_PORT)
    if kind == "fsdp":
        cfg["fsdp_config"] = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_transformer_layer_cls_to_wrap": no_split_module or "",
            # the engine gathers full tensors for its checkpoints and the saved adapter
            "fsdp_state_dict_type": "FULL_STATE_DICT",
            "fsdp_cpu_ram_efficient_loading": False,
            "fsdp_offload_params": False,
            "fsdp_reshard_after_forward": True,
        }
    return cfg


def config_yaml(cfg: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(cfg, sort_keys=True)


def launcher(layout: dict[str, Any], config_path: str, runtime: dict[str, Any]
             ) -> tuple[dict[str, str], list[str]]:
    """(environment, argv prefix) that starts the planned processes; append ``-m module …``
    or a script.

    Always ``accelerate launch --config_file`` (the config says how many processes on how many
    machines). CPU layouts add ``ACCELERATE_USE_CPU`` so any ``Accelerator`` inside a rank
    stays on the CPU and joins gloo, and one OpenMP pool size per process.
    """
    threads = str(layout["threads_per_process"])
    argv = ["accelerate", "launch", "--config_file", config_path,
            "--num_cpu_threads_per_process", threads]
    if layout.get("device", "cpu") == "cpu" and layout["kind"] != "single":
        return {"ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": threads}, argv
    return {}, argv


def launch_command(project_root: str, run_id: str, config_path: str, layout: dict[str, Any],
                   overrides: dict[str, Any], runtime: dict[str, Any] | None = None) -> str:
    """The shell command that trains this run with the planned layout.

    ``--resume RUN_ID`` makes the run use the planned run folder (it starts fresh when the run
    has no checkpoint yet, and picks up where it stopped when relaunched).
    """
    env, argv = launcher(layout, config_path, runtime or {})
    parts = argv + ["-m", "brewslm_core.cli", "train", "run", project_root, "--resume", run_id]
    if layout["kind"] == "fsdp":  # the engine shards when its config says so
        overrides = {**overrides, "fsdp": True}
    for key, value in sorted(overrides.items()):
        text = value if isinstance(value, str) else json.dumps(value)
        parts += ["--set", f"{key}={text}"]
    prefix = [f"{k}={shlex.quote(v)}" for k, v in sorted(env.items())]
    return " ".join(prefix + [shlex.join(parts)])
