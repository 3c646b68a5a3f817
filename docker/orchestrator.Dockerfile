# gha-orchestrator: creates, watches and removes the runner containers.
#
# Multi-stage: a Rust builder, then a minimal runtime (distroless `cc`: glibc,
# libgcc, CA certificates; no shell, no package manager). The HEALTHCHECK runs
# the binary's own `healthcheck` subcommand, so the image needs no curl.
#
# It runs as the distroless `nonroot` user (65532). It talks to the Docker
# engine through the socket, so the container must join the socket's group:
#   docker run --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -v /var/run/docker.sock:/var/run/docker.sock ...
# (docker-compose.yml does this with `group_add: ["${DOCKER_GID}"]`.)
#
# From source, at the repository root:
#   docker build -f docker/orchestrator.Dockerfile -t gha-orchestrator .
# From a binary built on the host (machines without a registry): PREBUILT is
# the binary's path inside the build context, and the base images can be
# substituted (see scripts/ensure-base-image.sh):
#   docker build -f docker/orchestrator.Dockerfile \
#     --build-arg PREBUILT=target/release/gha-orchestrator \
#     --build-arg RUST_IMAGE=gha-base:bookworm --build-arg BASE_IMAGE=gha-base:bookworm .
ARG RUST_IMAGE=rust:1-bookworm
ARG BASE_IMAGE=gcr.io/distroless/cc-debian12

FROM ${RUST_IMAGE} AS build
ARG PREBUILT=""
WORKDIR /src
COPY . .
RUN if [ -n "$PREBUILT" ]; then \
      install -D -m 0755 "$PREBUILT" /out/gha-orchestrator; \
    else \
      cargo build --release --locked -p orchestrator --bin gha-orchestrator \
      && install -D -m 0755 target/release/gha-orchestrator /out/gha-orchestrator; \
    fi

FROM ${BASE_IMAGE}
COPY --from=build /out/gha-orchestrator /usr/local/bin/gha-orchestrator
ENV ORCHESTRATOR_HOST=0.0.0.0 \
    ORCHESTRATOR_PORT=8000
EXPOSE 8000
USER 65532:65532
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
  CMD ["/usr/local/bin/gha-orchestrator", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/gha-orchestrator"]
