#!/bin/sh
# dind-entrypoint: start a private Docker engine for one runner.
#
# The engine listens on a Unix socket only (no TCP), in a directory that is a
# volume shared with that one runner container; nothing else can reach it.
# Arguments are passed on to dockerd, as with the official docker:dind image;
# like that image, a command that starts with `dockerd` is dockerd's whole
# command line (the orchestrator gives `dockerd --host=... --group=...`), so
# the socket and group below are then not added.
#
# Environment:
#   DOCKER_SOCKET           socket path (default /run/docker/docker.sock)
#   DOCKER_SOCKET_GID       group owning the socket, mode 0660 (default 123,
#                           the `docker` group of the official runner image)
#   DOCKER_STORAGE_DRIVER   default: dockerd's choice, overlay2 where the
#                           /var/lib/docker volume's file system allows it,
#                           else vfs (slow: a full copy per container)
#   DOCKER_REGISTRY_MIRROR  passed as --registry-mirror when set
#
# Security: whoever can open the socket is root in this engine, and this
# container runs with (nearly) every capability, so the socket is as strong as
# root on the host. That is why it lives in a volume mounted into this engine
# and its one runner only, and is not world-writable: only the socket's group
# (the runner's user) may use it.
set -eu

socket="${DOCKER_SOCKET:-/run/docker/docker.sock}"
gid="${DOCKER_SOCKET_GID:-123}"

# dockerd needs cgroup controllers. With cgroup v2 (usual with --privileged on
# a current host), move this process out of the root cgroup so controllers can
# be enabled for children (as moby's hack/dind does). With an empty tmpfs on
# /sys/fs/cgroup (hosts that refuse --privileged, see TESTING.md), mount the
# cgroup v1 controllers dockerd uses.
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  mkdir -p /sys/fs/cgroup/init
  xargs -rn1 </sys/fs/cgroup/cgroup.procs >/sys/fs/cgroup/init/cgroup.procs || :
  sed -e 's/ / +/g' -e 's/^/+/' </sys/fs/cgroup/cgroup.controllers \
    >/sys/fs/cgroup/cgroup.subtree_control
elif [ -z "$(ls -A /sys/fs/cgroup)" ]; then
  # One mount per host hierarchy (cpu and cpuacct are one on most hosts, two
  # on some): /proc/cgroups gives each enabled controller's hierarchy id.
  awk '!/^#/ && $4 == 1 { h = $2 ? $2 : $1; c[h] = c[h] == "" ? $1 : c[h] "," $1 }
    END { for (h in c) print c[h] }' /proc/cgroups |
    while read -r opts; do
      mkdir -p "/sys/fs/cgroup/$opts"
      mount -t cgroup -o "$opts" cgroup "/sys/fs/cgroup/$opts" ||
        rmdir "/sys/fs/cgroup/$opts"
    done
fi

# The engine's own state (pid files, containerd's socket) goes in a directory
# of this container, not next to the socket: the socket's directory is shared
# with the runner. Whatever a previous start left there is stale (the same pid
# can be alive again after a restart, and dockerd would refuse to start).
state=/run/dind
rm -rf "$state"
if [ "${1:-}" = dockerd ]; then
  shift
  set -- --exec-root "$state" --pidfile "$state/dockerd.pid" "$@"
else
  mkdir -p "$(dirname "$socket")"
  set -- --host "unix://$socket" --group "$gid" \
    --exec-root "$state" --pidfile "$state/dockerd.pid" "$@"
fi
mkdir -p "$state"
if [ -n "${DOCKER_STORAGE_DRIVER:-}" ]; then
  set -- --storage-driver "$DOCKER_STORAGE_DRIVER" "$@"
fi
if [ -n "${DOCKER_REGISTRY_MIRROR:-}" ]; then
  set -- --registry-mirror "$DOCKER_REGISTRY_MIRROR" "$@"
fi
exec dockerd "$@"
