"""build_and_push.py: configuration, the commands it plans, and its control
flow around a fake `docker` (a script on PATH that logs its arguments)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "build_and_push.py"

import build_and_push  # noqa: E402  (conftest puts the root on sys.path)


def run_script(args, env_file: Path, *, path_dir: Path | None = None, env=None):
    """Runs the script as a user would, with a clean environment."""
    environ = {
        "PATH": str(path_dir) if path_dir else os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--env-file", str(env_file), *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / ".env"
    path.write_text(
        textwrap.dedent(
            """\
            # a comment
            GITHUB_TOKEN=ghp_secret
            REGISTRY=registry.example.com/team
            export IMAGE_VERSION="1.4.2"

            """
        )
    )
    return path


def fake_docker(tmp_path: Path, fail_on: str | None = None) -> tuple[Path, Path]:
    """A `docker` on PATH that logs each call and fails for `fail_on`
    (a subcommand such as `build`). Returns (bin dir, log file)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "docker.log"
    script = bin_dir / "docker"
    script.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import sys
            with open({str(log)!r}, "a") as f:
                f.write(" ".join(sys.argv[1:]) + "\\n")
            sys.exit(3 if sys.argv[1:2] == [{fail_on!r}] else 0)
            """
        )
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return bin_dir, log


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


# --- dry run -----------------------------------------------------------------


def test_dry_run_prints_builds_then_pushes_and_runs_nothing(env_file, tmp_path):
    bin_dir, log = fake_docker(tmp_path)
    result = run_script(["--dry-run"], env_file, path_dir=bin_dir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        "docker build --platform linux/amd64 -f docker/gateway.Dockerfile"
        " -t registry.example.com/team/gha-api-gateway:1.4.2"
        " -t registry.example.com/team/gha-api-gateway:latest .",
        "docker build --platform linux/amd64 -f docker/orchestrator.Dockerfile"
        " -t registry.example.com/team/gha-orchestrator:1.4.2"
        " -t registry.example.com/team/gha-orchestrator:latest .",
        "docker push registry.example.com/team/gha-api-gateway:1.4.2",
        "docker push registry.example.com/team/gha-api-gateway:latest",
        "docker push registry.example.com/team/gha-orchestrator:1.4.2",
        "docker push registry.example.com/team/gha-orchestrator:latest",
    ]
    assert calls(log) == [], "a dry run must not run docker"
    assert "ghp_secret" not in result.stdout + result.stderr


def test_dry_run_with_cleanup_removes_every_tag_last(env_file):
    result = run_script(["--dry-run", "--cleanup"], env_file)
    assert result.returncode == 0, result.stderr
    last = result.stdout.splitlines()[-1]
    assert last == (
        "docker image rm registry.example.com/team/gha-api-gateway:1.4.2"
        " registry.example.com/team/gha-api-gateway:latest"
        " registry.example.com/team/gha-orchestrator:1.4.2"
        " registry.example.com/team/gha-orchestrator:latest"
    )


def test_dry_run_needs_no_docker(env_file, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_script(["--dry-run"], env_file, path_dir=empty)
    assert result.returncode == 0, result.stderr


def test_build_args_come_from_the_env_file(tmp_path):
    path = tmp_path / ".env"
    path.write_text(
        "REGISTRY=r.example.com/x\nIMAGE_VERSION=2.0.0\n"
        "RUST_IMAGE=gha-base:bookworm\nRUNTIME_BASE_IMAGE=gha-base:bookworm\n"
        "PREBUILT_GATEWAY=target/release/gha-api-gateway\n"
    )
    result = run_script(["--dry-run"], path)
    gateway, orchestrator = result.stdout.splitlines()[:2]
    assert "--build-arg RUST_IMAGE=gha-base:bookworm" in gateway
    assert "--build-arg BASE_IMAGE=gha-base:bookworm" in gateway
    assert "--build-arg PREBUILT=target/release/gha-api-gateway" in gateway
    assert "PREBUILT" not in orchestrator


def test_environment_wins_over_env_file(env_file):
    result = run_script(["--dry-run"], env_file, env={"IMAGE_VERSION": "9.9.9"})
    assert result.returncode == 0, result.stderr
    assert "gha-api-gateway:9.9.9" in result.stdout
    assert ":1.4.2" not in result.stdout


def test_trailing_slash_of_registry_is_dropped():
    config = build_and_push.load_config(Path("/nonexistent/.env"), {
        "REGISTRY": "ghcr.io/acme/", "IMAGE_VERSION": "1.0.0"})
    assert build_and_push.tags(config, build_and_push.IMAGES[0]) == [
        "ghcr.io/acme/gha-api-gateway:1.0.0",
        "ghcr.io/acme/gha-api-gateway:latest",
    ]


# --- configuration and argument errors ---------------------------------------


@pytest.mark.parametrize(
    "content, message",
    [
        ("IMAGE_VERSION=1.0.0\n", "REGISTRY not set"),
        ("REGISTRY=ghcr.io/acme\n", "IMAGE_VERSION not set"),
        ("REGISTRY=\nIMAGE_VERSION=\n", "REGISTRY and IMAGE_VERSION not set"),
        ("REGISTRY=ghcr.io/acme\nIMAGE_VERSION=-bad\n", "not a valid image tag"),
        ("REGISTRY=ghcr.io/acme\nIMAGE_VERSION=1.0 beta\n", "not a valid image tag"),
        ("REGISTRY=https://ghcr.io/acme\nIMAGE_VERSION=1\n", "not a registry path"),
        ("REGISTRY=ghcr.io/acme\nthis line is wrong\n", "expected KEY=VALUE"),
    ],
)
def test_configuration_errors_exit_2_before_any_docker_call(tmp_path, content, message):
    bin_dir, log = fake_docker(tmp_path)
    path = tmp_path / ".env"
    path.write_text(content)
    result = run_script([], path, path_dir=bin_dir)
    assert result.returncode == 2
    assert message in result.stderr
    assert calls(log) == []


def test_missing_env_file_is_named(tmp_path):
    result = run_script(["--dry-run"], tmp_path / "nope.env")
    assert result.returncode == 2
    assert "nope.env (not found)" in result.stderr


def test_unknown_argument_is_a_usage_error(env_file):
    result = run_script(["--push-everything"], env_file)
    assert result.returncode == 2
    assert "unrecognized arguments" in result.stderr


def test_no_docker_on_path_is_a_clear_error(env_file, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_script([], env_file, path_dir=empty)
    assert result.returncode == 2
    assert "docker not found" in result.stderr


# --- control flow (fake docker) ----------------------------------------------


def test_builds_all_then_pushes_all(env_file, tmp_path):
    bin_dir, log = fake_docker(tmp_path)
    result = run_script([], env_file, path_dir=bin_dir)
    assert result.returncode == 0, result.stderr
    verbs = [c.split()[0] for c in calls(log)]
    assert verbs == ["build", "build", "push", "push", "push", "push"]
    assert "pushed:" in result.stdout


def test_failed_build_stops_before_any_push(env_file, tmp_path):
    bin_dir, log = fake_docker(tmp_path, fail_on="build")
    result = run_script(["--cleanup"], env_file, path_dir=bin_dir)
    assert result.returncode == 1
    assert "nothing was pushed" in result.stderr
    assert [c.split()[0] for c in calls(log)] == ["build"]


def test_failed_push_stops_and_skips_cleanup(env_file, tmp_path):
    bin_dir, log = fake_docker(tmp_path, fail_on="push")
    result = run_script(["--cleanup"], env_file, path_dir=bin_dir)
    assert result.returncode == 1
    assert [c.split()[0] for c in calls(log)] == ["build", "build", "push"]


def test_cleanup_removes_local_images_after_the_push(env_file, tmp_path):
    bin_dir, log = fake_docker(tmp_path)
    result = run_script(["--cleanup"], env_file, path_dir=bin_dir)
    assert result.returncode == 0, result.stderr
    logged = calls(log)
    assert logged[-1].startswith("image rm ")
    assert logged[-1].count(":latest") == 2
    assert [c.split()[0] for c in logged[:-1]] == ["build"] * 2 + ["push"] * 4
