#!/usr/bin/env bash
# Make sure a Debian bookworm base image exists locally under the tag given
# (default: gha-base:bookworm), without needing a container registry.
#
#  1. reuse the tag if it is already there;
#  2. otherwise try `docker pull debian:bookworm-slim` and tag it;
#  3. otherwise build a minimal root file system with debootstrap and import it.
#
# Safe to run concurrently: a lock file serialises the build.
set -euo pipefail

TAG="${1:-gha-base:bookworm}"
LOCK="${TMPDIR:-/tmp}/gha-base-image.lock"

exec 9>"$LOCK"
flock 9

if docker image inspect "$TAG" >/dev/null 2>&1; then
  exit 0
fi

if timeout 60 docker pull debian:bookworm-slim >/dev/null 2>&1; then
  docker tag debian:bookworm-slim "$TAG"
  echo "base image $TAG tagged from debian:bookworm-slim" >&2
  exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  echo "no registry and no debootstrap: install it with 'apt-get install debootstrap'" >&2
  exit 1
fi

ROOT="$(mktemp -d)"
trap 'rm -rf "$ROOT"' EXIT
echo "building $TAG with debootstrap (no registry reachable)..." >&2
debootstrap --variant=minbase --include=ca-certificates bookworm "$ROOT" >"$ROOT.log" 2>&1 || {
  tail -20 "$ROOT.log" >&2
  exit 1
}
rm -f "$ROOT.log"
# Drop caches that only make the image bigger.
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*
tar -C "$ROOT" -c . | docker import - "$TAG" >/dev/null
echo "base image $TAG imported" >&2
