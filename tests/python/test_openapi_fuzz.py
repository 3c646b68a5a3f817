"""Property-based tests of both OpenAPI documents with schemathesis.

Starts the real binaries on loopback — the GitHub simulator (bound on the
gateway address of a Docker network of this test's own, so runner
containers can reach it), the orchestrator (real Docker engine, the runner
stand-in image) and the gateway in front of it — and lets schemathesis send
a bounded number of generated requests per operation to each document.
Every check runs (no 5xx, every answer matches its documented status and
schema, missing auth refused...) except "schema-valid data must be
accepted": a well-formed request for a repository GitHub does not know is
rightly refused with 422, which no schema can express.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNNER_IMAGE = "gha-sim-runner:test"
API_KEY = "fuzz-key-0123456789"
EXAMPLES = os.environ.get("FUZZ_MAX_EXAMPLES", "25")

pytestmark = pytest.mark.docker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def docker(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], check=True, capture_output=True, text=True, timeout=60
    ).stdout.strip()


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def binaries() -> Path:
    profile = os.environ.get("E2E_CARGO_PROFILE", "debug")
    flags = ["--release"] if profile == "release" else []
    subprocess.run(
        ["cargo", "build", *flags, "--locked", "-p", "orchestrator", "-p", "gateway", "-p", "github-sim"],
        cwd=REPO_ROOT, check=True, timeout=1800,
    )
    return REPO_ROOT / "target" / ("release" if profile == "release" else "debug")


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    if subprocess.run(["docker", "image", "inspect", RUNNER_IMAGE], capture_output=True).returncode != 0:
        pytest.fail(f"{RUNNER_IMAGE} is missing: the Rust tests build it (run scripts/test)")
    bin_dir = binaries()
    test_id = uuid.uuid4().hex[:10]
    network = f"gha-fuzz-{test_id}"
    docker("network", "create", "--label", f"dev.gha-runners.test={test_id}", network)
    gateway_ip = docker("network", "inspect", "-f", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", network)
    logs = tmp_path_factory.mktemp("logs")
    sim_port, orch_port, gw_port = free_port(), free_port(), free_port()
    children = []

    def start(name: str, args: list[str], env: dict[str, str]) -> None:
        log = open(logs / f"{name}.log", "w")
        children.append((name, subprocess.Popen(
            args, env={"PATH": os.environ["PATH"], "RUST_LOG": "warn", **env},
            stdout=log, stderr=subprocess.STDOUT,
        ), log))

    try:
        start("github-sim", [str(bin_dir / "github-sim")], {
            "SIM_LISTEN": f"{gateway_ip}:{sim_port}", "SIM_TOKENS": "fuzz-token", "SIM_REPOS": "acme/app",
        })
        wait_http(f"http://{gateway_ip}:{sim_port}/_sim/stats")
        start("orchestrator", [str(bin_dir / "gha-orchestrator")], {
            "ORCHESTRATOR_HOST": "127.0.0.1", "ORCHESTRATOR_PORT": str(orch_port),
            "ORCHESTRATOR_ID": f"fuzz-{test_id}", "GITHUB_TOKEN": "fuzz-token",
            "GITHUB_API_URL": f"http://{gateway_ip}:{sim_port}", "GITHUB_REPOSITORY": "acme/app",
            "GITHUB_WEBHOOK_SECRET": "fuzz-secret", "RUNNER_IMAGE": RUNNER_IMAGE, "RUNNER_NETWORK": network,
            "RUNNER_IMAGE_PULL_INTERVAL_SECONDS": "0", "AUTOSCALE_POLL_INTERVAL_SECONDS": "0",
            "MAX_RUNNERS": "3", "RECONCILE_INTERVAL_SECONDS": "5",
        })
        wait_http(f"http://127.0.0.1:{orch_port}/healthz")
        start("gateway", [str(bin_dir / "gha-api-gateway")], {
            "API_GATEWAY_HOST": "127.0.0.1", "API_GATEWAY_PORT": str(gw_port),
            "ORCHESTRATOR_URL": f"http://127.0.0.1:{orch_port}", "API_KEYS": API_KEY,
            "RATE_LIMIT_PER_SECOND": "100000", "RATE_LIMIT_BURST": "100000",
        })
        wait_http(f"http://127.0.0.1:{gw_port}/healthz")
        yield {"orchestrator": f"http://127.0.0.1:{orch_port}", "gateway": f"http://127.0.0.1:{gw_port}",
               "logs": logs}
    finally:
        for _, child, log in children:
            child.kill()
            child.wait()
            log.close()
        names = docker("ps", "-aq", "--filter", f"label=dev.gha-runners.instance=fuzz-{test_id}").split()
        if names:
            docker("rm", "-f", *names)
        # The orchestrator's lease on its id, left by the kill above.
        volumes = docker("volume", "ls", "-q", "--filter", f"label=dev.gha-runners.instance=fuzz-{test_id}").split()
        if volumes:
            docker("volume", "rm", "-f", *volumes)
        docker("network", "rm", network)


def schemathesis(url: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["schemathesis", "run", f"{url}/openapi.json", "--max-examples", EXAMPLES,
         "--checks", "all", "--exclude-checks", "positive_data_acceptance", "--no-color", *extra],
        capture_output=True, text=True, timeout=600,
    )


def test_the_orchestrator_keeps_its_openapi_promises(services):
    result = schemathesis(services["orchestrator"])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_the_gateway_keeps_its_openapi_promises(services):
    result = schemathesis(services["gateway"], "-H", f"X-API-Key: {API_KEY}")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
