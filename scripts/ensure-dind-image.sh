#!/usr/bin/env bash
# Make sure a Docker-in-Docker engine image exists locally under the tag given
# (default: gha-dind:bookworm): the stand-in for the official docker:dind on
# machines that reach no container registry. Does nothing when the tag exists
# and holds the current entrypoint (a label records the entrypoint's checksum,
# so editing docker/dind/entrypoint.sh rebuilds the image).
#
# Built from Debian's packages: a debootstrap root file system with docker.io
# (engine, containerd, runc and the docker CLI) and iptables, plus the
# entrypoint docker/dind/entrypoint.sh, imported with `docker import`.
# About 380 MB, one to two minutes (mostly downloads); see the entrypoint for
# how to run it.
#
# Safe to run concurrently: a lock file serialises the build.
set -euo pipefail

TAG="${1:-gha-dind:bookworm}"
ENTRYPOINT="$(cd "$(dirname "$0")/.." && pwd)/docker/dind/entrypoint.sh"
LOCK="${TMPDIR:-/tmp}/gha-dind-image.lock"
LABEL=dev.gha-runners.dind-entrypoint
SUM="$(sha256sum "$ENTRYPOINT" | cut -c1-16)"

exec 9>"$LOCK"
flock 9

if [ "$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$TAG" 2>/dev/null)" = "$SUM" ]; then
  exit 0
fi

if ! command -v debootstrap >/dev/null 2>&1; then
  echo "debootstrap is needed to build $TAG: install it with 'apt-get install debootstrap'" >&2
  exit 1
fi

ROOT="$(mktemp -d)"
trap 'rm -rf "$ROOT" "$ROOT.log"' EXIT
echo "building $TAG with debootstrap (a few minutes)..." >&2
debootstrap --variant=minbase --include=docker.io,iptables,ca-certificates \
  bookworm "$ROOT" >"$ROOT.log" 2>&1 || {
  tail -20 "$ROOT.log" >&2
  exit 1
}
# Drop what only makes the image bigger.
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* \
  "$ROOT"/usr/share/doc "$ROOT"/usr/share/man
install -m 0755 "$ENTRYPOINT" "$ROOT/usr/local/bin/dind-entrypoint"

# An image of an older entrypoint would stay behind, untagged: drop it (this
# fails harmlessly while a container still uses it).
docker image rm "$TAG" >/dev/null 2>&1 || true
# DOCKER_HOST lets `docker exec <engine> docker ...` (and a runner made from
# this image) use the engine's default socket.
tar -C "$ROOT" -c . | docker import \
  --change 'ENTRYPOINT ["/usr/local/bin/dind-entrypoint"]' \
  --change 'ENV DOCKER_HOST=unix:///run/docker/docker.sock' \
  --change 'VOLUME /var/lib/docker' \
  --change "LABEL $LABEL=$SUM" \
  - "$TAG" >/dev/null
echo "engine image $TAG imported" >&2
