"""What the end-to-end tests share: running commands, HTTP to loopback,
waiting, free ports, and the host's binaries that the images install
(PREBUILT) on machines without a registry."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = "gha-base:bookworm"
# The local Docker engine image, and where its Docker CLI is: without a
# registry, the stand-in runner image copies that CLI (DOCKER_CLI_IMAGE,
# DOCKER_CLI_PATH) instead of docker:cli's.
DIND_IMAGE = "gha-dind:bookworm"
DIND_DOCKER_CLI = "/usr/bin/docker"
# The PREBUILT_* build argument of each image, and the binary it installs.
BINARIES = {
    "PREBUILT_GATEWAY": "gha-api-gateway",
    "PREBUILT_ORCHESTRATOR": "gha-orchestrator",
    "PREBUILT_GITHUB_SIM": "github-sim",
    "PREBUILT_SIM_RUNNER": "sim-runner",
}
# The Docker label holding the ORCHESTRATOR_ID that owns a container.
MANAGED_LABEL = "dev.gha-runners.instance"


def sh(*args: str, check: bool = True, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def decode(raw: bytes):
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


def http(method: str, url: str, body: dict | None = None, key: str | None = None):
    """(status, the body parsed as JSON, or as text when it is not JSON)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("content-type", "application/json")
    if key:
        request.add_header("x-api-key", key)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, decode(response.read())
    except urllib.error.HTTPError as error:
        return error.code, decode(error.read())


def wait_for(what: str, check, timeout: float, interval: float = 1.0):
    """Polls `check()` until it returns something truthy; fails with `what`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, ValueError) as error:  # connection refused while starting
            last = error
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def host_binaries() -> Path:
    """The directory of the host's binaries, built with cargo when missing or stale.

    Release by default (what users ship); `E2E_CARGO_PROFILE=debug` reuses the
    debug binaries the Rust test run has just built, so CI compiles the
    workspace once.
    """
    profile = os.environ.get("E2E_CARGO_PROFILE", "release")
    flags = ["--release"] if profile == "release" else []
    sh(
        "cargo", "build", *flags, "--locked",
        "-p", "orchestrator", "-p", "gateway", "-p", "github-sim",
        cwd=REPO_ROOT, timeout=1800,
    )
    built = REPO_ROOT / "target" / ("release" if profile == "release" else "debug")
    for name in BINARIES.values():
        assert (built / name).is_file(), f"{built / name} missing after cargo build"
    return built


def ensure_base_image() -> str:
    sh("bash", str(REPO_ROOT / "scripts" / "ensure-base-image.sh"), BASE_IMAGE, timeout=600)
    return BASE_IMAGE


def ensure_dind_image() -> str:
    sh("bash", str(REPO_ROOT / "scripts" / "ensure-dind-image.sh"), DIND_IMAGE, timeout=900)
    return DIND_IMAGE
