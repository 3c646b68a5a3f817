"""Shared pytest set-up: the repository root on sys.path, the `docker` marker."""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "docker: needs a running Docker engine and docker-compose (slow)"
    )
