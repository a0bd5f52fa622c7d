"""The cluster files parse and say what cluster/README.md says, without a cluster: the launcher
config against Ray's own schema, the RayJobs against KubeRay's ray.io/v1 field names, the Jobs API
left on everywhere, and the runtime environment's pip list kept in step with pyproject.toml."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

CLUSTER = Path(__file__).parents[2] / "cluster"
ROOT = CLUSTER.parent
RAY_VERSION = "2.60.0"

# KubeRay's ray.io/v1 field names (ray-operator/apis/ray/v1: RayJobSpec, RayClusterSpec,
# HeadGroupSpec, WorkerGroupSpec; authOptions since KubeRay 1.5.1)
RAYJOB_SPEC = {
    "activeDeadlineSeconds", "backoffLimit", "rayClusterSpec", "submitterPodTemplate", "metadata",
    "clusterSelector", "submitterConfig", "managedBy", "deletionStrategy", "entrypoint", "runtimeEnvYAML",
    "jobId", "submissionMode", "entrypointResources", "entrypointNumCpus", "entrypointNumGpus",
    "ttlSecondsAfterFinished", "shutdownAfterJobFinishes", "suspend", "schedule",
}  # fmt: skip
RAYCLUSTER_SPEC = {
    "headGroupSpec", "workerGroupSpecs", "rayVersion", "enableInTreeAutoscaling", "autoscalerOptions",
    "headServiceAnnotations", "suspend", "authOptions", "gcsFaultToleranceOptions", "managedBy",
}  # fmt: skip
HEAD_GROUP = {"serviceType", "headService", "enableIngress", "rayStartParams", "template"}
WORKER_GROUP = {
    "groupName", "replicas", "minReplicas", "maxReplicas", "numOfHosts", "rayStartParams", "template",
    "scaleStrategy", "suspend", "idleTimeoutSeconds",
}  # fmt: skip
# Ray's runtime environment fields (ray.runtime_env.RuntimeEnv)
RUNTIME_ENV = {"working_dir", "py_modules", "pip", "uv", "conda", "env_vars", "excludes", "container", "config"}

RAYJOBS = ["rayjob.yaml", "rayjob-runtime-env.yaml"]


def _load(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((CLUSTER / name).read_text()) if d is not None]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower()


@pytest.mark.parametrize("name", ["cluster.yaml", *RAYJOBS, "results-pvc.yaml", "results-reader.yaml"])
def test_every_cluster_file_parses(name: str):
    assert _load(name)


@pytest.mark.parametrize("name", RAYJOBS)
def test_the_rayjobs_use_kuberay_v1_fields_and_keep_the_jobs_api(name: str):
    (job,) = _load(name)
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    assert set(spec) <= RAYJOB_SPEC, set(spec) - RAYJOB_SPEC
    cluster = spec["rayClusterSpec"]
    assert set(cluster) <= RAYCLUSTER_SPEC, set(cluster) - RAYCLUSTER_SPEC
    assert cluster["rayVersion"] == RAY_VERSION
    assert cluster["authOptions"] == {"mode": "token"}
    head = cluster["headGroupSpec"]
    assert set(head) <= HEAD_GROUP, set(head) - HEAD_GROUP
    # the submitter posts the job to the dashboard's Jobs API: it must not be switched off
    assert str(head["rayStartParams"].get("include-dashboard", "true")).lower() == "true"
    groups = cluster["workerGroupSpecs"]
    for group in groups:
        assert set(group) <= WORKER_GROUP, set(group) - WORKER_GROUP
    pods = [head["template"]["spec"], *(g["template"]["spec"] for g in groups)]
    for pod in pods:
        assert all(c["name"] and c["image"] for c in pod["containers"])
    mounts = {m["mountPath"] for c in pods[0]["containers"] for m in c.get("volumeMounts", [])}
    assert "/results" in mounts and spec["entrypoint"].endswith("--out /results")
    assert "--address auto" in spec["entrypoint"]


def test_the_runtime_env_rayjob_brings_raybench_and_its_dependencies():
    (job,) = _load("rayjob-runtime-env.yaml")
    env = yaml.safe_load(job["spec"]["runtimeEnvYAML"])
    assert set(env) <= RUNTIME_ENV and "working_dir" in env
    assert job["spec"]["entrypoint"].startswith("python -m raybench run ")  # raybench from the working dir
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = {_name(r) for r in project["dependencies"]} - {"ray"}
    assert needed <= {_name(r) for r in env["pip"]}, needed - {_name(r) for r in env["pip"]}


def test_the_image_rayjob_uses_the_dockerfile_image():
    (job,) = _load("rayjob.yaml")
    dockerfile = (CLUSTER / "Dockerfile").read_text()
    assert f"FROM rayproject/ray:{RAY_VERSION}-py311" in dockerfile
    assert "libfuse2 fuse3" in dockerfile
    assert f'"ray[default]=={RAY_VERSION}"' in dockerfile
    images = {
        c["image"]
        for spec in [job["spec"]["rayClusterSpec"]["headGroupSpec"], *job["spec"]["rayClusterSpec"]["workerGroupSpecs"]]
        for c in spec["template"]["spec"]["containers"]
    }
    assert images == {"REGISTRY/raybench:0.1.0"}
    # BuildKit's per-Dockerfile ignore file sends only what `pip install .` needs
    ignore = (CLUSTER / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*") :][:5] == ["*", "!pyproject.toml", "!README.md", "!raybench/", "!fuse_bench/"]


def test_the_launcher_config_is_valid_for_ray_and_serves_the_jobs_api():
    ray_autoscaler = pytest.importorskip("ray.autoscaler")
    jsonschema = pytest.importorskip("jsonschema")
    config = _load("cluster.yaml")[0]
    schema = json.loads((Path(ray_autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    from ray.autoscaler._private.util import fillout_defaults, validate_config

    validate_config(fillout_defaults(config))
    (head,) = [c for c in config["head_start_ray_commands"] if c.startswith("ray start")]
    assert "--include-dashboard=true" in head and "--dashboard-host=127.0.0.1" in head
    assert any(f'"ray[default]=={RAY_VERSION}"' in c for c in config["setup_commands"])
    assert any("RAY_AUTH_MODE=token" in c for c in config["setup_commands"])
