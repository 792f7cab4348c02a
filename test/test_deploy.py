"""The container and Kubernetes files: they pass their validators, agree with each other, and the
worker reads its settings from the environment the way they set it."""
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, run_cli

from igneous_like.queues import status


def validator(name: str) -> str:
    """The tool from this Python's environment (test.sh does not activate .venv), else from PATH."""
    beside = Path(sys.executable).parent / name
    path = str(beside) if beside.exists() else shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (it comes with requirements-test.txt)")
    return path


def test_dockerfile_passes_hadolint():
    result = subprocess.run([validator("hadolint"), str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_deployment_passes_strict_kubernetes_validation():
    result = subprocess.run([validator("kubernetes-validate"), "--strict", str(REPO / "deployment.yml")],
                            capture_output=True, text=True)
    assert result.returncode == 0 and "passed" in result.stdout + result.stderr, result.stdout + result.stderr


def test_deployment_and_autoscaler_agree():
    deployment = yaml.safe_load((REPO / "deployment.yml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    env = {item["name"]: item for item in pod["containers"][0]["env"]}
    lease = int(env["IGNEOUS_LIKE_LEASE_SEC"]["value"])
    assert pod["terminationGracePeriodSeconds"] >= lease  # a worker may finish its task on SIGTERM
    assert env["IGNEOUS_LIKE_QUEUE"]["value"].startswith("sqs://")
    limits = pod["containers"][0]["resources"]["limits"]
    assert limits["cpu"] and limits["memory"]
    scaler, auth = yaml.safe_load_all((REPO / "keda-scaledobject.yml").read_text())
    assert scaler["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert scaler["spec"]["triggers"][0]["type"] == "aws-sqs-queue"
    assert scaler["spec"]["triggers"][0]["authenticationRef"]["name"] == auth["metadata"]["name"]
    secrets = {ref["name"] for ref in auth["spec"]["secretTargetRef"]}
    assert secrets == {env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"]}


def test_worker_takes_queue_lease_and_processes_from_the_environment(make_layer, tmp_path):
    """What the image's entrypoint runs: `igneous-like execute` with everything from the environment."""
    path = make_layer("img", np.ones((128, 128, 64), np.uint8), "image")
    queue = f"fq://{tmp_path / 'q'}"
    run_cli("image", "downsample", path, "--num-mips", 1, "--queue", queue)
    env = {"IGNEOUS_LIKE_QUEUE": queue, "IGNEOUS_LIKE_LEASE_SEC": "30", "IGNEOUS_LIKE_PARALLEL": "2"}
    run_cli("execute", "-x", env=env)
    counts = status(queue)
    assert counts["enqueued"] == 0 and counts["completed"] > 0
