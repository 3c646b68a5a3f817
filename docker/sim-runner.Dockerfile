# The runner stand-in: an image shaped like the official runner image
# (user `runner`, uid 1001, in group `docker` gid 123; `/home/runner/run.sh`;
# bash and a Docker CLI) whose run.sh is `sim-runner`, which talks to the
# GitHub simulator instead of GitHub. A job's `run:` script runs with bash in
# /home/runner/_work/NAME/NAME, and can call `docker` on the engine that
# DOCKER_HOST names (a runner's private engine: its socket is group 123).
#
# From source (any machine that can pull the Rust and docker:cli images), at
# the repository root:
#   docker build -f docker/sim-runner.Dockerfile -t gha-sim-runner .
# From a binary built on the host (machines without a registry): put the binary
# alone in a context directory, substitute the build stage's image, and take
# the Docker CLI from the local engine image (scripts/ensure-dind-image.sh:
# Debian's docker.io, linked against bookworm's libc like the base):
#   docker build -f docker/sim-runner.Dockerfile --build-arg PREBUILT=sim-runner \
#     --build-arg RUST_IMAGE=gha-base:bookworm --build-arg BASE_IMAGE=gha-base:bookworm \
#     --build-arg DOCKER_CLI_IMAGE=gha-dind:bookworm --build-arg DOCKER_CLI_PATH=/usr/bin/docker DIR
ARG RUST_IMAGE=rust:1-bookworm
ARG BASE_IMAGE=debian:bookworm-slim
# The image the Docker CLI is copied from, and the CLI's path in it (the
# official docker:cli keeps a static binary at /usr/local/bin/docker).
ARG DOCKER_CLI_IMAGE=docker:cli

FROM ${DOCKER_CLI_IMAGE} AS docker-cli

FROM ${RUST_IMAGE} AS build
ARG PREBUILT=""
WORKDIR /src
COPY . .
RUN if [ -n "$PREBUILT" ]; then \
      install -D -m 0755 "$PREBUILT" /out/sim-runner; \
    else \
      cargo build --release --locked -p github-sim --bin sim-runner \
      && install -D -m 0755 target/release/sim-runner /out/sim-runner; \
    fi

FROM ${BASE_IMAGE}
ARG DOCKER_CLI_PATH=/usr/local/bin/docker
# As in the official runner image: group `docker` has gid 123 and the runner is
# in it, so it may use an engine socket of group 123, mode 0660.
RUN groupadd --gid 123 docker \
    && useradd --uid 1001 --create-home --home-dir /home/runner --groups docker runner \
    && install -d -o runner -g runner /home/runner/_work /home/runner/externals \
    && echo "the runner stand-in's externals" >/home/runner/externals/README
COPY --from=docker-cli ${DOCKER_CLI_PATH} /usr/local/bin/docker
COPY --from=build /out/sim-runner /usr/local/bin/sim-runner
RUN ln -s /usr/local/bin/sim-runner /home/runner/run.sh \
    && bash --version >/dev/null && docker --version
USER 1001
WORKDIR /home/runner
CMD ["/home/runner/run.sh"]
