"""Deploy refusals and records without a model server: every failure code that needs no live
model, the append-only history, the CLI, and the SkyPilot YAML parsed by SkyPilot itself."""

from __future__ import annotations

import json

import pytest
from test_deploy_support import RUN_ID, lay_out_export, smollm2_dir, write_report
from typer.testing import CliRunner

from brewslm_core.cli import app
from brewslm_core.deploy import DeploymentError, deploy, history, list_deployments, promote, reject, rollback
from brewslm_core.deploy.serve import free_port

pytestmark = pytest.mark.slow  # lays out an export from the converted SmolLM2 folder


@pytest.fixture()
def export(project):
    return lay_out_export(project, "export-aa01", smollm2_dir()).name


def dead_endpoint() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there


def codes(project) -> list[str | None]:
    """Reason codes of the deployment events, oldest first (None for plain info events)."""
    ev = project.events.list(stage="deployment", limit=None).sort_values("id")
    return [c if isinstance(c, str) else None for c in ev["reason_code"]]


def test_promote_is_blocked_without_a_promotable_report_and_smoke_fails_on_a_dead_endpoint(project, export):
    dep = deploy(project, export, "vllm", endpoint=dead_endpoint())
    assert (dep.status, dep.server, dep.revision) == ("candidate", "external", 1)
    with pytest.raises(DeploymentError, match="has no eval report") as exc:
        promote(project, dep.deploy_id)
    assert exc.value.reason_code == "deployment_promote_blocked"
    write_report(project, promotable=False)
    with pytest.raises(DeploymentError, match="not promotable: gate chrf") as exc:
        promote(project, dep.deploy_id)
    assert exc.value.reason_code == "deployment_promote_blocked"
    write_report(project, promotable=True)
    with pytest.raises(DeploymentError, match="smoke check of .* failed") as exc:
        promote(project, dep.deploy_id)
    assert exc.value.reason_code == "deployment_smoke_failed"
    now = list_deployments(project)[0]
    assert now.status == "candidate" and now.smoke is not None and not now.smoke.ok
    assert "Connection" in now.smoke.error
    assert codes(project) == [
        None,
        "deployment_promote_blocked",
        "deployment_promote_blocked",
        "deployment_smoke_failed",
    ]
    ev = project.events.list(run_id=dep.deploy_id)
    assert set(ev["parent_run_id"]) == {export}


def test_reject_is_final_and_wrong_states_are_refused(project, export):
    dep = deploy(project, export, "vllm", endpoint=dead_endpoint())
    rejected = reject(project, dep.deploy_id, "not this one")
    assert rejected.status == "rejected" and rejected.note == "not this one"
    with pytest.raises(DeploymentError, match="only a candidate can be rejected"):
        reject(project, dep.deploy_id)
    write_report(project, promotable=True)
    with pytest.raises(DeploymentError, match="it is rejected") as exc:
        promote(project, dep.deploy_id)
    assert exc.value.reason_code == "deployment_promote_blocked"
    # append-only: every revision is still there, in order
    assert [(r.revision, r.status) for r in history(project, dep.deploy_id)] == [
        (1, "candidate"),
        (2, "rejected"),
    ]


def test_rollback_without_a_promoted_deployment_or_predecessor(project, export):
    with pytest.raises(DeploymentError) as exc:
        rollback(project)
    assert exc.value.reason_code == "deployment_rollback_no_predecessor"
    dep = deploy(project, export, "vllm", endpoint=dead_endpoint())
    with pytest.raises(DeploymentError, match="is candidate") as exc:
        rollback(project, dep.deploy_id)
    assert exc.value.reason_code == "deployment_rollback_no_predecessor"
    assert codes(project)[-1] == "deployment_rollback_no_predecessor"


def test_unknown_export_target_and_refused_layouts(project, export, tmp_path):
    with pytest.raises(DeploymentError, match="no export 'export-nope'"):
        deploy(project, "export-nope", "vllm", endpoint=dead_endpoint())
    with pytest.raises(DeploymentError, match="unknown deploy target 'k8s'"):
        deploy(project, export, "k8s")
    from test_deploy_support import make_adapter

    adapter = make_adapter(smollm2_dir(), tmp_path / "adapter", rank=4)
    lay_out_export(project, "export-lora", smollm2_dir(), adapter_src=adapter)
    with pytest.raises(DeploymentError, match="cannot load adapters"):
        deploy(project, "export-lora", "local")
    assert list_deployments(project) == []  # refusals leave no record


def test_cli_deploy_list_promote_reject(project, export):
    runner = CliRunner()
    url = dead_endpoint()
    res = runner.invoke(
        app, ["deploy", str(project.root), export, "--target", "vllm", "--endpoint", url, "--json"]
    )
    assert res.exit_code == 0, res.output
    dep = json.loads(res.stdout)
    assert dep["status"] == "candidate" and dep["endpoint"] == url
    res = runner.invoke(app, ["deploy", "promote", str(project.root), dep["deploy_id"]])
    assert res.exit_code == 2 and "[deployment_promote_blocked]" in res.stderr
    res = runner.invoke(app, ["deploy", "reject", str(project.root), dep["deploy_id"], "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["status"] == "rejected"
    res = runner.invoke(app, ["deploy", "list", str(project.root), "--json"])
    assert [d["status"] for d in json.loads(res.stdout)] == ["rejected"]
    res = runner.invoke(app, ["deploy", "rollback", str(project.root)])
    assert res.exit_code == 2 and "[deployment_rollback_no_predecessor]" in res.stderr
    res = runner.invoke(app, ["deploy", "runtime", "status"])
    assert res.exit_code == 0 and set(json.loads(res.stdout)) == {"vllm", "skypilot"}
    res = runner.invoke(app, ["deploy", "runtime", "install", "tgi"])
    assert res.exit_code == 2 and "unknown runtime 'tgi'" in res.stderr


@pytest.fixture(scope="session")
def skypilot_runtime():
    from brewslm_core.deploy import runtime

    return runtime.install_runtime("skypilot")  # the product's own install: a fresh machine gets it


def test_skypilot_yaml_is_parsed_by_sky(project, export, tmp_path, skypilot_runtime):
    import yaml
    from test_deploy_support import make_adapter

    dep = deploy(project, export, "skypilot", accelerators="A10G:1")
    assert dep.server == "skypilot-yaml" and dep.endpoint is None
    task = yaml.safe_load((project.root / dep.artifact).read_text())
    assert task["run"].startswith("vllm serve /brewslm/export-aa01/model ")
    assert task["resources"] == {"accelerators": "A10G:1", "ports": 8000}
    assert "validated by sky.Task.from_yaml" in dep.note
    adapter = make_adapter(smollm2_dir(), tmp_path / "adapter", rank=4)
    lay_out_export(project, "export-lora", smollm2_dir(), adapter_src=adapter)
    lora = deploy(project, "export-lora", "skypilot")
    run = yaml.safe_load((project.root / lora.artifact).read_text())["run"]
    assert "--enable-lora" in run and f"{RUN_ID}=/brewslm/export-lora/adapter" in run
    # sky refuses a broken task: the validation is real
    from brewslm_core.deploy.targets import validate_sky_yaml

    bad = tmp_path / "bad.yaml"
    bad.write_text("resources:\n  accelerators: 7\nnot_a_field: 1\n")
    with pytest.raises(DeploymentError, match="SkyPilot refused"):
        validate_sky_yaml(bad)


def test_gguf_export_on_local_needs_llama_cpp(project, export):
    import importlib.util
    import json as _json

    if importlib.util.find_spec("llama_cpp") is not None:
        pytest.skip("llama-cpp-python is installed here: the llama.cpp server path is taken instead")
    bundle = project.exports_dir / "export-gguf"
    bundle.mkdir()
    (bundle / "model-q8_0.gguf").write_bytes(b"GGUF")  # never read: the target refuses before serving
    manifest = _json.loads((project.exports_dir / export / "manifest.json").read_text())
    manifest.update(export_id="export-gguf", format="gguf", files=[])
    manifest["serve"].update(model_dir="model-q8_0.gguf", command=["python", "-m", "llama_cpp.server"])
    (bundle / "manifest.json").write_text(_json.dumps(manifest))
    with pytest.raises(DeploymentError, match=r"llama-cpp-python\[server\]"):
        deploy(project, "export-gguf", "local")
