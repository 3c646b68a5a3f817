"""End to end, on the real Docker engine: the documented sandbox path.

Builds the images with the project's Dockerfiles through `docker-compose
build` (binaries built on the host are installed with the PREBUILT build
argument, the bases are the local `gha-base:bookworm`: no registry here),
runs `docker-compose --profile sandbox up -d`, and then, as a user would,
through the gateway's published port with an API key:

1. creates a runner, queues a job in the simulator, sees the runner take it
   and disappear;
2. queues a job with no API call and sees the webhook path do the same;
3. checks that a runner container has no mounts and only the runner network,
   and that from the runner network neither the orchestrator nor the gateway
   can be reached;
4. checks that the GitHub token, the webhook secret and the API key, given
   as Compose secret files (`secrets/`, 0644 in a 0700 directory, as the
   README says), are in no image, no log, and the `docker inspect` of no
   container: every container of the stack (the orchestrator included) and
   the runners; a GITHUB_TOKEN, GITHUB_WEBHOOK_SECRET and API_KEYS left in
   `.env` too are blanked (the gateway refuses a key that is only there);
5. `docker-compose down -v`, then no container and no network is left.

Everything runs in a temporary copy of the compose file (its own `.env`,
secret files, project name, ports, runner network, orchestrator id), so it
never touches a user's `.env` or stack, and it is torn down even when the test
fails.
Bounded: about 5 minutes at most once the binaries exist.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from e2e_support import (
    BASE_IMAGE, BINARIES, DIND_DOCKER_CLI, DIND_IMAGE, MANAGED_LABEL, REPO_ROOT, ensure_base_image,
    ensure_dind_image, free_port, host_binaries, sh, wait_for,
)
from e2e_support import http as _http

API_KEY = "e2e-key-5d81c0"
# An API key an older `.env` may still hold: Compose blanks it, so it opens nothing.
LEFT_OVER_API_KEY = "e2e-left-over-key-3a9f"
# Distinctive, so that finding one anywhere is a leak, not a coincidence.
TOKEN = "sandbox-token-e2e-7f3c1d"
WEBHOOK_SECRET = "e2e-webhook-secret-9b2e4a"
REPOSITORY = "sandbox/app"

pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(
        shutil.which("docker") is None or shutil.which("docker-compose") is None,
        reason="needs docker and docker-compose",
    ),
]


def http(method: str, url: str, body: dict | None = None, key: str | None = API_KEY):
    return _http(method, url, body, key)


class Sandbox:
    """One compose project in a temporary directory, torn down on close."""

    def __init__(self, tmp: Path):
        self.id = uuid.uuid4().hex[:8]
        self.dir = tmp / "stack"
        self.project = f"gha-e2e-{self.id}"
        self.runner_network = f"gha-e2e-runners-{self.id}"
        self.orchestrator_id = f"e2e-{self.id}"
        self.registry = f"gha-e2e.local/{self.id}"
        self.sim_image = f"gha-github-sim:e2e-{self.id}"
        self.sim_runner_image = f"gha-sim-runner:e2e-{self.id}"
        self.gateway_port = free_port()
        self.sim_port = free_port()
        self.env = dict(os.environ, DOCKER_BUILDKIT="0", COMPOSE_DOCKER_CLI_BUILD="0")
        # The project files users run: the compose file, the Dockerfiles,
        # .dockerignore; and the binaries at their PREBUILT paths.
        self.dir.mkdir()
        shutil.copy(REPO_ROOT / "docker-compose.yml", self.dir)
        shutil.copy(REPO_ROOT / ".dockerignore", self.dir)
        shutil.copytree(REPO_ROOT / "docker", self.dir / "docker")

    def write_env(self, release: Path) -> None:
        (self.dir / "target" / "release").mkdir(parents=True)
        for name in BINARIES.values():
            shutil.copy2(release / name, self.dir / "target" / "release" / name)
        socket_gid = os.stat("/var/run/docker.sock").st_gid
        # The secrets as the README sets them up: files in secrets/ (0700),
        # readable by the containers' uid 65532 (0644).
        secrets = self.dir / "secrets"
        secrets.mkdir(mode=0o700)
        for name, value in (
            ("github_token", TOKEN), ("github_webhook_secret", WEBHOOK_SECRET), ("api_keys", f"{API_KEY}\n"),
            ("github_app_private_key", ""),  # the token is used: the App's key file stays empty
        ):
            (secrets / name).write_text(value)
            (secrets / name).chmod(0o644)
        lines = {
            # required
            "REGISTRY": self.registry,
            "IMAGE_VERSION": "e2e",
            "DOCKER_GID": str(socket_gid),
            # the sandbox block of .env.example
            "GITHUB_API_URL": "http://github-sim:9000",
            "GITHUB_REPOSITORY": REPOSITORY,
            "RUNNER_IMAGE": self.sim_runner_image,
            "RUNNER_IMAGE_PULL_INTERVAL_SECONDS": "0",
            # isolation from any other stack on this engine
            "GITHUB_SIM_IMAGE": self.sim_image,
            "SIM_RUNNER_IMAGE": self.sim_runner_image,
            "RUNNER_NETWORK": self.runner_network,
            "ORCHESTRATOR_ID": self.orchestrator_id,
            "RUNNER_NAME_PREFIX": f"e2e-{self.id}",
            "API_GATEWAY_PUBLISHED_PORT": str(self.gateway_port),
            "SIM_PUBLISHED_PORT": str(self.sim_port),
            # webhooks only, so job 2 proves the webhook path
            "AUTOSCALE_POLL_INTERVAL_SECONDS": "0",
            "RECONCILE_INTERVAL_SECONDS": "5",
            "RUNNER_IDLE_TIMEOUT_SECONDS": "20",
            # the most verbose logs, to prove the token never reaches them
            "RUST_LOG": "trace",
            # no registry: local bases, host-built binaries
            "RUST_IMAGE": BASE_IMAGE,
            "RUNTIME_BASE_IMAGE": BASE_IMAGE,
            "SIM_BASE_IMAGE": BASE_IMAGE,
            "SIM_DOCKER_CLI_IMAGE": DIND_IMAGE,
            "SIM_DOCKER_CLI_PATH": DIND_DOCKER_CLI,
            **{var: f"target/release/{name}" for var, name in BINARIES.items()},
            # what an older .env may still hold: Compose must blank all three
            "GITHUB_TOKEN": TOKEN,
            "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "API_KEYS": LEFT_OVER_API_KEY,
        }
        (self.dir / ".env").write_text("".join(f"{k}={v}\n" for k, v in lines.items()))

    def compose(self, *args: str, check: bool = True, timeout: float = 300):
        return sh(
            "docker-compose", "-p", self.project, "--profile", "sandbox", *args,
            cwd=self.dir, env=self.env, check=check, timeout=timeout,
        )

    def stack_containers(self) -> list[str]:
        """Every container of the compose project, running or exited."""
        return sh(
            "docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={self.project}"
        ).stdout.split()

    def container(self, service: str) -> str:
        cid = self.compose("ps", "-q", service).stdout.strip()
        assert cid, f"no container for {service}"
        return cid

    def health(self, service: str) -> str:
        return sh("docker", "inspect", "-f", "{{.State.Health.Status}}", self.container(service)).stdout.strip()

    def gateway(self, method: str, path: str, body: dict | None = None, key: str | None = API_KEY):
        return http(method, f"http://127.0.0.1:{self.gateway_port}{path}", body, key)

    def sim(self, method: str, path: str, body: dict | None = None):
        return http(method, f"http://127.0.0.1:{self.sim_port}{path}", body, key=None)

    def runner_containers(self) -> list[str]:
        out = sh("docker", "ps", "-aq", "--filter", f"label={MANAGED_LABEL}={self.orchestrator_id}").stdout
        return out.split()

    def left_over(self) -> dict[str, list[str]]:
        containers = self.stack_containers() + self.runner_containers()
        networks = [
            n
            for n in sh("docker", "network", "ls", "--format", "{{.Name}}").stdout.split()
            if n.startswith(self.project) or n == self.runner_network
        ]
        return {"containers": containers, "networks": networks}

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "60", check=False).stdout

    def close(self) -> None:
        """Best effort, whatever state the test left."""
        self.compose("down", "-v", "--remove-orphans", "--timeout", "30", check=False, timeout=180)
        for cid in self.runner_containers():
            sh("docker", "rm", "-f", cid, check=False)
        sh("docker", "network", "rm", self.runner_network, check=False)
        for tag in ("gha-api-gateway", "gha-orchestrator"):
            sh("docker", "image", "rm", f"{self.registry}/{tag}:e2e", check=False)
        sh("docker", "image", "rm", self.sim_image, self.sim_runner_image, check=False)


@pytest.fixture
def sandbox(tmp_path):
    release = host_binaries()
    ensure_base_image()
    ensure_dind_image()
    stack = Sandbox(tmp_path)
    stack.write_env(release)
    try:
        yield stack
    finally:
        if os.environ.get("E2E_KEEP") != "1":
            stack.close()


def runner_done(stack: Sandbox, runner_id: str, container_id: str | None):
    """The runner finished and its container is gone."""
    status, body = stack.gateway("GET", f"/api/v1/runners/{runner_id}")
    gone = status == 404 or (status == 200 and body["state"] in ("finished", "removing"))
    if container_id:
        gone = gone and sh("docker", "inspect", container_id, check=False).returncode != 0
    return gone


def job_completed(stack: Sandbox, job_id: int):
    status, job = stack.sim("GET", f"/_sim/jobs/{job_id}")
    assert status == 200, job
    return job if job["status"] == "completed" else None


def test_sandbox_loop_through_the_gateway(sandbox: Sandbox):
    stack = sandbox
    try:
        # --- the documented commands -----------------------------------------
        stack.compose("config", "-q")
        stack.compose("build", timeout=600)
        stack.compose("up", "-d", "--no-build", timeout=240)

        for service in ("orchestrator", "api-gateway", "github-sim"):
            wait_for(f"{service} healthy", lambda s=service: stack.health(s) == "healthy", 120)

        # The image's own HEALTHCHECK passes through the published port too.
        status, _ = stack.gateway("GET", "/healthz", key=None)
        assert status == 200
        status, body = stack.gateway("GET", "/api/v1/runners", key=None)
        assert status == 401, body
        status, body = stack.gateway("GET", "/api/v1/runners", key=LEFT_OVER_API_KEY)
        assert status == 401, body
        status, body = stack.gateway("GET", "/api/v1/runners")
        assert status == 200, body
        status, body = stack.gateway("GET", "/api/v1/health", key=None)
        assert status == 200, body

        # --- 1. API path: create a runner, queue a job, runner takes it, vanishes
        status, body = stack.gateway("POST", "/api/v1/runners", {"count": 1})
        assert status == 201, body
        runner = body["runners"][0]
        runner_id = runner["id"]

        def idle():
            status, view = stack.gateway("GET", f"/api/v1/runners/{runner_id}")
            return view if status == 200 and view["state"] == "idle" else None

        view = wait_for("the runner to be idle", idle, 60)
        container_id = view["container_id"]

        # 3. isolation of a runner container, while it is alive
        runner_inspect = sh("docker", "inspect", container_id).stdout
        inspect = json.loads(runner_inspect)[0]
        assert inspect["Mounts"] == [], inspect["Mounts"]
        assert list(inspect["NetworkSettings"]["Networks"]) == [stack.runner_network]
        assert not inspect["HostConfig"]["Privileged"]

        status, job = stack.sim(
            "POST", "/_sim/jobs", {"repository": REPOSITORY, "labels": ["self-hosted"], "duration_ms": 1000}
        )
        assert status == 201, job
        done = wait_for("job 1 to complete", lambda: job_completed(stack, job["id"]), 60)
        assert done["conclusion"] == "success", done
        assert done["runner_name"] == runner_id or done["runner_name"].startswith(f"e2e-{stack.id}"), done
        wait_for("runner 1 to disappear", lambda: runner_done(stack, runner_id, container_id), 60)

        # --- 2. webhook path: a queued job and no API call --------------------
        status, job = stack.sim(
            "POST", "/_sim/jobs", {"repository": REPOSITORY, "labels": ["self-hosted"], "duration_ms": 1000}
        )
        assert status == 201, job
        done = wait_for("job 2 to complete (webhook → autoscaler)", lambda: job_completed(stack, job["id"]), 90)
        assert done["conclusion"] == "success", done
        assert done["runner_name"].startswith(f"e2e-{stack.id}"), done
        status, deliveries = stack.sim("GET", "/_sim/webhooks")
        assert status == 200 and deliveries, "the simulator sent no webhook"
        wait_for("every runner container to be gone", lambda: stack.runner_containers() == [], 90)

        # 3. from the runner network: no orchestrator, no gateway, no socket
        probe = sh(
            "docker", "run", "--rm", "--network", stack.runner_network, "--entrypoint", "bash",
            stack.sim_runner_image, "-c",
            "for target in orchestrator/8000 api-gateway/8080; do "
            "  if timeout 3 bash -c \"exec 3<>/dev/tcp/${target}\" 2>/dev/null; then echo reached $target; fi; "
            "done; "
            "test -e /var/run/docker.sock && echo socket; "
            "timeout 3 bash -c 'exec 3<>/dev/tcp/github-sim/9000' && echo sim-ok",
            check=False,
        )
        assert "reached" not in probe.stdout, probe.stdout
        assert "socket" not in probe.stdout, probe.stdout
        assert "sim-ok" in probe.stdout, f"runner network cannot reach the simulator: {probe.stdout}{probe.stderr}"

        # --- 4. the secrets leak nowhere they must not be --------------------
        # Not in any image (history or file system), not in the `docker
        # inspect` of any container (every service's, the runner's), not in
        # any service's log at trace level.
        secrets = {
            "token": TOKEN, "webhook secret": WEBHOOK_SECRET, "API key": API_KEY,
            "left-over API key": LEFT_OVER_API_KEY,
        }
        for tag in ("gha-api-gateway", "gha-orchestrator"):
            image = f"{stack.registry}/{tag}:e2e"
            history = sh("docker", "history", "--no-trunc", image).stdout
            saved = subprocess.run(["docker", "save", image], capture_output=True, timeout=120, check=True).stdout
            for what, value in secrets.items():
                assert value not in history, f"{what} in the history of {image}"
                assert value.encode() not in saved, f"{what} in the layers of {image}"
        containers = {}
        for cid in stack.stack_containers():
            text = sh("docker", "inspect", cid).stdout
            containers[json.loads(text)[0]["Name"]] = text
        assert len(containers) == 4, list(containers)  # gateway, orchestrator, simulator, runner stand-in
        containers["runner"] = runner_inspect
        for name, text in containers.items():
            for what, value in secrets.items():
                assert value not in text, f"{what} in `docker inspect` of {name}"
        logs = stack.compose("logs", "--no-color").stdout
        for what, value in secrets.items():
            assert value not in logs, f"{what} in a service's log"
        # The orchestrator got them as read-only files, and blank variables.
        orchestrator = json.loads(sh("docker", "inspect", stack.container("orchestrator")).stdout)[0]
        env = orchestrator["Config"]["Env"]
        for pair in (
            "GITHUB_TOKEN=", "GITHUB_TOKEN_FILE=/run/secrets/github_token",
            "GITHUB_WEBHOOK_SECRET=", "GITHUB_WEBHOOK_SECRET_FILE=/run/secrets/github_webhook_secret",
            "GITHUB_APP_PRIVATE_KEY_FILE=/run/secrets/github_app_private_key",
        ):
            assert pair in env, env
        mounts = {m["Destination"]: m for m in orchestrator["Mounts"]}
        for name in ("github_token", "github_webhook_secret", "github_app_private_key"):
            assert mounts[f"/run/secrets/{name}"]["RW"] is False, mounts
        # The gateway got its keys the same way, and no GitHub secret.
        gateway = json.loads(sh("docker", "inspect", stack.container("api-gateway")).stdout)[0]
        for pair in ("API_KEYS=", "API_KEYS_FILE=/run/secrets/api_keys"):
            assert pair in gateway["Config"]["Env"], gateway["Config"]["Env"]
        secret_mounts = {m["Destination"]: m for m in gateway["Mounts"] if m["Destination"].startswith("/run/secrets")}
        assert list(secret_mounts) == ["/run/secrets/api_keys"], gateway["Mounts"]
        assert secret_mounts["/run/secrets/api_keys"]["RW"] is False

        # --- 5. down, then nothing is left ------------------------------------
        stack.compose("down", "-v", "--timeout", "30", timeout=180)
        assert stack.left_over() == {"containers": [], "networks": []}
    except BaseException:
        print(stack.logs())
        raise
