#!/usr/bin/env python3
"""Build the gateway and orchestrator images and push them to REGISTRY.

Reads `.env` at the repository root (the file Docker Compose uses; variables
set in the environment win over it, as with Compose), then for each service:

    docker build --platform linux/amd64 -f docker/<service>.Dockerfile \
        -t REGISTRY/<image>:IMAGE_VERSION -t REGISTRY/<image>:latest .

Every image is built before anything is pushed, so a failed build pushes
nothing. Then both tags of both images are pushed; `--cleanup` removes the
local images afterwards.

Optional build settings from `.env` (see `.env.example`): RUST_IMAGE,
RUNTIME_BASE_IMAGE (the runtime base, build argument BASE_IMAGE),
PREBUILT_GATEWAY / PREBUILT_ORCHESTRATOR (install a host-built binary instead
of compiling in the Rust image).

Exit status: 0 done, 1 a docker command failed, 2 configuration or usage error.
Standard library only.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
PLATFORM = "linux/amd64"

EXIT_OK = 0
EXIT_DOCKER_FAILED = 1
EXIT_CONFIG = 2

# Docker's rule for a tag: https://docs.docker.com/reference/cli/docker/image/tag/
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# A registry host (optional port) and path of lower-case components.
REGISTRY_RE = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")


@dataclass(frozen=True)
class Image:
    """One image this script builds: its name and how to build it."""

    name: str
    dockerfile: str
    # The `.env` variable that names a host-built binary for this image.
    prebuilt_var: str


IMAGES = (
    Image("gha-api-gateway", "docker/gateway.Dockerfile", "PREBUILT_GATEWAY"),
    Image("gha-orchestrator", "docker/orchestrator.Dockerfile", "PREBUILT_ORCHESTRATOR"),
)


class ConfigError(Exception):
    """The configuration cannot produce a build; the message says why."""


def parse_env_file(path: Path) -> dict[str, str]:
    """Reads KEY=VALUE lines as Compose does: `#` comments and blank lines are
    skipped, an `export ` prefix and matching outer quotes are dropped."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def load_config(env_file: Path, environ: dict[str, str]) -> dict[str, str]:
    """`.env` values overridden by the environment; checks the required ones."""
    if env_file.is_file():
        config = parse_env_file(env_file)
    elif env_file.exists():
        raise ConfigError(f"{env_file} is not a file")
    else:
        config = {}
    for key in ("REGISTRY", "IMAGE_VERSION", "RUST_IMAGE", "RUNTIME_BASE_IMAGE") + tuple(
        image.prebuilt_var for image in IMAGES
    ):
        if environ.get(key):
            config[key] = environ[key]

    missing = [key for key in ("REGISTRY", "IMAGE_VERSION") if not config.get(key)]
    if missing:
        where = f"{env_file}" if env_file.is_file() else f"{env_file} (not found)"
        raise ConfigError(
            f"{' and '.join(missing)} not set: add {'/'.join(missing)} to {where} "
            "(see .env.example) or set them in the environment"
        )
    registry = config["REGISTRY"].rstrip("/")
    if not REGISTRY_RE.match(registry):
        raise ConfigError(
            f"REGISTRY={config['REGISTRY']!r} is not a registry path "
            "(e.g. ghcr.io/owner or registry.example.com:5000/team)"
        )
    config["REGISTRY"] = registry
    version = config["IMAGE_VERSION"]
    if not TAG_RE.match(version):
        raise ConfigError(
            f"IMAGE_VERSION={version!r} is not a valid image tag "
            "(letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')"
        )
    return config


def tags(config: dict[str, str], image: Image) -> list[str]:
    """`REGISTRY/name:IMAGE_VERSION` and `REGISTRY/name:latest`."""
    base = f"{config['REGISTRY']}/{image.name}"
    versions = [config["IMAGE_VERSION"]]
    if config["IMAGE_VERSION"] != "latest":
        versions.append("latest")
    return [f"{base}:{v}" for v in versions]


def build_command(config: dict[str, str], image: Image) -> list[str]:
    """The `docker build` command of one image, run at the repository root."""
    command = ["docker", "build", "--platform", PLATFORM, "-f", image.dockerfile]
    for tag in tags(config, image):
        command += ["-t", tag]
    build_args = {
        "RUST_IMAGE": config.get("RUST_IMAGE", ""),
        "BASE_IMAGE": config.get("RUNTIME_BASE_IMAGE", ""),
        "PREBUILT": config.get(image.prebuilt_var, ""),
    }
    for key, value in build_args.items():
        if value:
            command += ["--build-arg", f"{key}={value}"]
    command.append(".")
    return command


def plan(config: dict[str, str], cleanup: bool) -> list[list[str]]:
    """Every command, in order: all builds, then all pushes, then removals."""
    commands = [build_command(config, image) for image in IMAGES]
    commands += [["docker", "push", tag] for image in IMAGES for tag in tags(config, image)]
    if cleanup:
        commands += [["docker", "image", "rm"] + [t for image in IMAGES for t in tags(config, image)]]
    return commands


def run(command: list[str], env: dict[str, str]) -> int:
    print(f"+ {shlex.join(command)}", flush=True)
    try:
        return subprocess.run(command, cwd=REPO_ROOT, env=env, check=False).returncode
    except OSError as error:
        print(f"error: cannot run {command[0]}: {error}", file=sys.stderr)
        return 127


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build the gha-api-gateway and gha-orchestrator images for "
        f"{PLATFORM}, tag them :IMAGE_VERSION and :latest under REGISTRY, and push them.",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print every command without running any"
    )
    parser.add_argument(
        "--cleanup", action="store_true", help="remove the local images after the push"
    )
    parser.add_argument(
        "--env-file",
        type=Path,
        default=REPO_ROOT / ".env",
        help="configuration file (default: .env at the repository root)",
    )
    args = parser.parse_args(argv)

    try:
        config = load_config(args.env_file, dict(os.environ))
    except (ConfigError, OSError, UnicodeDecodeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_CONFIG

    commands = plan(config, args.cleanup)
    if args.dry_run:
        for command in commands:
            print(shlex.join(command))
        return EXIT_OK

    if shutil.which("docker") is None:
        print(
            "error: docker not found on PATH: install Docker (https://docs.docker.com/get-docker/)",
            file=sys.stderr,
        )
        return EXIT_CONFIG

    env = dict(os.environ)
    for command in commands:
        code = run(command, env)
        if code != 0:
            step = " ".join(command[:2])
            after = "; nothing was pushed" if command[1] == "build" else ""
            print(f"error: `{step}` failed (exit {code}){after}", file=sys.stderr)
            return EXIT_DOCKER_FAILED
    print("pushed: " + ", ".join(t for image in IMAGES for t in tags(config, image)))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
