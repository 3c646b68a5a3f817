"""docker-compose.yml and .env.example, checked without starting anything:
Compose accepts the file (both profiles), its wiring is what the README says,
.env.example names every variable the services and the compose file read, the
secrets reach the orchestrator and the gateway as files, never through the
environment, and the gateway is published on loopback unless told otherwise."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_SOURCES = [
    REPO_ROOT / "crates" / "orchestrator" / "src" / "config.rs",
    REPO_ROOT / "crates" / "gateway" / "src" / "config.rs",
]
# Read by the binaries outside clap's `env = "..."` attributes.
EXTRA_VARIABLES = {"RUST_LOG", "DOCKER_HOST"}
REQUIRED = ("REGISTRY", "IMAGE_VERSION")
# Values that a careless .env might still hold: they must reach no container.
LEFT_OVER_SECRETS = {
    "GITHUB_TOKEN": "ghp_left_in_env",
    "GITHUB_WEBHOOK_SECRET": "webhook_left_in_env",
    "API_KEYS": "api_key_left_in_env",
}


def variables_of_the_compose_file() -> set[str]:
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    return set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", text))


def variables_read_by_services() -> set[str]:
    names: set[str] = set(EXTRA_VARIABLES)
    for source in CONFIG_SOURCES:
        names |= set(re.findall(r'env = "([A-Z0-9_]+)"', source.read_text()))
    return names


def env_example_lines() -> list[str]:
    return (REPO_ROOT / ".env.example").read_text().splitlines()


def test_env_example_names_every_variable_with_a_comment_and_default():
    lines = env_example_lines()
    for name in sorted(variables_read_by_services()):
        index = next(
            (i for i, line in enumerate(lines) if re.match(rf"^#? ?{name}=", line)), None
        )
        assert index is not None, f".env.example lacks {name}"
        comment = lines[index - 1]
        assert comment.startswith("# ") and "=" not in comment.split()[1], (
            f"{name} has no one-line comment above it"
        )
        if name not in REQUIRED:
            # the comment above the first occurrence gives the default
            assert "Default" in comment or "default" in comment, f"{name}: no default in {comment!r}"


def test_env_example_names_every_variable_of_the_compose_file():
    lines = env_example_lines()
    names = variables_of_the_compose_file()
    assert {
        "GITHUB_TOKEN_SECRET_PATH", "GITHUB_WEBHOOK_SECRET_PATH", "API_KEYS_SECRET_PATH", "API_GATEWAY_BIND"
    } <= names
    for name in sorted(names):
        assert any(re.match(rf"^#? ?{name}=", line) for line in lines), (
            f".env.example lacks {name} (read by docker-compose.yml)"
        )


def test_env_example_puts_the_required_variables_first_and_set():
    values = [line.split("=", 1)[0] for line in env_example_lines() if re.match(r"^[A-Z_]+=", line)]
    assert values[: len(REQUIRED)] == list(REQUIRED)


def test_env_example_sets_no_secret():
    # The token, the webhook secret and the API keys are files (Compose
    # secrets), and the sandbox block does not set them either.
    secret = r"(GITHUB_TOKEN|GITHUB_WEBHOOK_SECRET|API_KEYS)="
    for line in env_example_lines():
        assert not re.match(rf"^#? ?{secret}", line) or line.startswith("# "), line
    values = [line for line in env_example_lines() if re.match(rf"^# ?{secret}", line)]
    assert len(values) == 3, values  # documented once each, commented out


def test_secret_files_stay_out_of_git_and_of_build_contexts():
    gitignore = (REPO_ROOT / ".gitignore").read_text().splitlines()
    assert "/secrets/*" in gitignore and "!/secrets/README.md" in gitignore
    assert "secrets" in (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert (REPO_ROOT / "secrets" / "README.md").is_file()


def test_env_example_has_no_empty_values():
    # clap reads `KEY=` as an empty value, which most variables refuse.
    for line in env_example_lines():
        match = re.match(r"^#? ?([A-Z_]+)=(.*)$", line)
        if match:
            assert match.group(2).strip(), f"empty value: {line!r}"


@pytest.fixture(scope="module")
def compose_config(tmp_path_factory):
    """`docker-compose config` of both profiles, with .env.example as .env."""
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose not installed")
    stack = tmp_path_factory.mktemp("compose")
    shutil.copy(REPO_ROOT / "docker-compose.yml", stack)
    shutil.copytree(REPO_ROOT / "docker", stack / "docker")
    # .env.example, plus what an upgraded .env may still hold.
    env = (REPO_ROOT / ".env.example").read_text()
    env += "".join(f"{k}={v}\n" for k, v in LEFT_OVER_SECRETS.items())
    (stack / ".env").write_text(env)

    def config(*args: str) -> dict:
        result = subprocess.run(
            [tool, *args, "config"], cwd=stack, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        return yaml.safe_load(result.stdout)

    return {"default": config(), "sandbox": config("--profile", "sandbox")}


def test_default_profile_runs_only_the_two_services(compose_config):
    # Compose 1.29 lists disabled services in `config`, v2 does not: check
    # the profiles instead of the listing.
    services = compose_config["sandbox"]["services"]
    assert set(services) == {"api-gateway", "orchestrator", "github-sim", "sim-runner"}
    always = {name for name, service in services.items() if not service.get("profiles")}
    assert always == {"api-gateway", "orchestrator"}
    assert services["github-sim"]["profiles"] == ["sandbox"]
    assert services["sim-runner"]["profiles"] == ["sandbox"]


def test_images_come_from_registry_and_version(compose_config):
    services = compose_config["default"]["services"]
    assert services["api-gateway"]["image"] == "ghcr.io/your-org/gha-api-gateway:0.1.0"
    assert services["orchestrator"]["image"] == "ghcr.io/your-org/gha-orchestrator:0.1.0"
    for service in (services["api-gateway"], services["orchestrator"]):
        assert service["build"]["dockerfile"].startswith("docker/")
        assert service["restart"] == "unless-stopped"
        assert service["healthcheck"]["test"][0] == "CMD"


def published(port) -> tuple[str, str]:
    """(host address, host port) of a `ports:` entry as `config` prints it."""
    if isinstance(port, dict):
        return port.get("host_ip", "0.0.0.0"), str(port["published"])
    address, host_port, _ = port.rsplit(":", 2)
    return address, host_port


def test_gateway_is_published_on_loopback_and_orchestrator_is_not(compose_config):
    services = compose_config["default"]["services"]
    (port,) = services["api-gateway"]["ports"]
    assert published(port) == ("127.0.0.1", "8080")
    assert "ports" not in services["orchestrator"]


def test_gateway_address_and_port_can_be_chosen(tmp_path):
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose not installed")
    shutil.copy(REPO_ROOT / "docker-compose.yml", tmp_path)
    (tmp_path / ".env").write_text(
        "REGISTRY=r\nIMAGE_VERSION=1\nAPI_GATEWAY_BIND=0.0.0.0\nAPI_GATEWAY_PUBLISHED_PORT=9090\n"
    )
    result = subprocess.run(
        [tool, "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    (port,) = yaml.safe_load(result.stdout)["services"]["api-gateway"]["ports"]
    assert published(port) == ("0.0.0.0", "9090")


def test_gateway_reaches_orchestrator_by_its_port_and_holds_no_token(compose_config):
    env = compose_config["default"]["services"]["api-gateway"]["environment"]
    assert env["ORCHESTRATOR_URL"] == "http://orchestrator:8000"
    assert env["GITHUB_TOKEN"] == ""


def test_orchestrator_reads_the_secrets_from_files_only(compose_config):
    config = compose_config["sandbox"]
    orchestrator = config["services"]["orchestrator"]
    env = orchestrator["environment"]
    assert env["GITHUB_TOKEN"] == "" and env["GITHUB_WEBHOOK_SECRET"] == ""
    assert env["GITHUB_TOKEN_FILE"] == "/run/secrets/github_token"
    assert env["GITHUB_WEBHOOK_SECRET_FILE"] == "/run/secrets/github_webhook_secret"
    assert env["GITHUB_APP_PRIVATE_KEY_FILE"] == "/run/secrets/github_app_private_key"
    sources = {s if isinstance(s, str) else s["source"] for s in orchestrator["secrets"]}
    assert sources == {"github_token", "github_webhook_secret", "github_app_private_key"}
    # file-based secrets (no Swarm), at the documented default paths
    assert config["secrets"]["github_token"]["file"].endswith("/secrets/github_token")
    assert config["secrets"]["github_webhook_secret"]["file"].endswith("/secrets/github_webhook_secret")
    assert config["secrets"]["github_app_private_key"]["file"].endswith("/secrets/github_app_private_key")


def test_gateway_reads_the_api_keys_from_a_file_only(compose_config):
    config = compose_config["sandbox"]
    gateway = config["services"]["api-gateway"]
    env = gateway["environment"]
    assert env["API_KEYS"] == "" and env["API_KEYS_FILE"] == "/run/secrets/api_keys"
    assert "API_AUTH" not in env  # keys are required unless .env says otherwise
    sources = {s if isinstance(s, str) else s["source"] for s in gateway["secrets"]}
    assert sources == {"api_keys"}, "the gateway gets no GitHub secret"
    assert config["secrets"]["api_keys"]["file"].endswith("/secrets/api_keys")


def test_no_service_gets_a_secret_through_its_environment(compose_config):
    # Even with GITHUB_TOKEN and GITHUB_WEBHOOK_SECRET left in .env.
    for profile in ("default", "sandbox"):
        for name, service in compose_config[profile]["services"].items():
            text = yaml.safe_dump(service)
            for value in LEFT_OVER_SECRETS.values():
                assert value not in text, f"{value} reaches {name} ({profile})"
    sim = compose_config["sandbox"]["services"]["github-sim"]
    assert "SIM_TOKENS" not in sim["environment"] and "SIM_WEBHOOK_SECRET" not in sim["environment"]
    # the simulator reads the same files at start
    assert {s if isinstance(s, str) else s["source"] for s in sim["secrets"]} == {
        "github_token", "github_webhook_secret"
    }
    assert "/run/secrets/github_token" in " ".join(sim["entrypoint"])


def test_secret_paths_can_be_moved(tmp_path):
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose not installed")
    shutil.copy(REPO_ROOT / "docker-compose.yml", tmp_path)
    (tmp_path / ".env").write_text(
        "REGISTRY=r\nIMAGE_VERSION=1\n"
        "GITHUB_TOKEN_SECRET_PATH=/etc/gha/token\nGITHUB_WEBHOOK_SECRET_PATH=/etc/gha/webhook\n"
        "API_KEYS_SECRET_PATH=/etc/gha/api_keys\nGITHUB_APP_PRIVATE_KEY_SECRET_PATH=/etc/gha/app.pem\n"
    )
    result = subprocess.run(
        [tool, "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    secrets = yaml.safe_load(result.stdout)["secrets"]
    assert secrets["github_token"]["file"] == "/etc/gha/token"
    assert secrets["github_webhook_secret"]["file"] == "/etc/gha/webhook"
    assert secrets["api_keys"]["file"] == "/etc/gha/api_keys"
    assert secrets["github_app_private_key"]["file"] == "/etc/gha/app.pem"


def test_orchestrator_has_the_socket_and_its_group(compose_config):
    orchestrator = compose_config["default"]["services"]["orchestrator"]
    volumes = [v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in orchestrator["volumes"]]
    assert any(v.startswith("/var/run/docker.sock:/var/run/docker.sock") for v in volumes), volumes
    assert orchestrator["group_add"] == ["999"]


def test_runner_network_is_not_the_orchestrators(compose_config):
    sandbox = compose_config["sandbox"]
    assert sandbox["networks"]["runners"]["name"] == "gha-runners"
    assert set(sandbox["services"]["orchestrator"]["networks"]) == {"backend"}
    assert set(sandbox["services"]["api-gateway"]["networks"]) == {"backend"}
    assert set(sandbox["services"]["github-sim"]["networks"]) == {"backend", "runners"}


def test_simulator_control_api_is_published_on_loopback_only(compose_config):
    (port,) = compose_config["sandbox"]["services"]["github-sim"]["ports"]
    host_ip = port["host_ip"] if isinstance(port, dict) else port.split(":")[0]
    assert host_ip == "127.0.0.1"


def test_missing_registry_is_refused(tmp_path):
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.skip("docker-compose not installed")
    shutil.copy(REPO_ROOT / "docker-compose.yml", tmp_path)
    (tmp_path / ".env").write_text("IMAGE_VERSION=1\n")
    result = subprocess.run(
        [tool, "config"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "REGISTRY" in result.stderr


def sandbox_script_variables() -> set[str]:
    """The variables scripts/sandbox documents in its header."""
    text = (REPO_ROOT / "scripts" / "sandbox").read_text()
    return set(re.findall(r"^#   (SANDBOX_[A-Z_]+)", text, re.MULTILINE))


@pytest.mark.parametrize("doc", ["docs/CONFIGURATION.md", "docs/CONFIGURATION.es.md"])
def test_every_variable_is_in_a_table_linked_from_the_readme(doc):
    rows = [line for line in (REPO_ROOT / doc).read_text().splitlines() if line.startswith("| `")]
    names = variables_read_by_services() | variables_of_the_compose_file() | sandbox_script_variables()
    assert "SANDBOX_PREBUILT_DIR" in names
    missing = sorted(name for name in names if not any(f"`{name}`" in row.split(" | ")[0] for row in rows))
    assert not missing, f"{doc} has no table row for {missing}"
    readme = "README.es.md" if doc.endswith(".es.md") else "README.md"
    assert f"]({doc})" in (REPO_ROOT / readme).read_text()


def test_readme_first_screen_gives_the_two_commands():
    for readme in ("README.md", "README.es.md"):
        first_screen = "\n".join((REPO_ROOT / readme).read_text().splitlines()[:25])
        assert "scripts/sandbox up" in first_screen and "scripts/test" in first_screen, readme
