# The GitHub simulator (`github-sim`) for the sandbox profile of
# docker-compose.yml and for tests: no GitHub account needed. Not for
# production. Runner containers use docker/sim-runner.Dockerfile.
#
# From source, at the repository root:
#   docker build -f docker/github-sim.Dockerfile -t gha-github-sim .
# From a binary built on the host (machines without a registry):
#   docker build -f docker/github-sim.Dockerfile \
#     --build-arg PREBUILT=target/release/github-sim \
#     --build-arg RUST_IMAGE=gha-base:bookworm --build-arg BASE_IMAGE=gha-base:bookworm .
ARG RUST_IMAGE=rust:1-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
ARG PREBUILT=""
WORKDIR /src
COPY . .
RUN if [ -n "$PREBUILT" ]; then \
      install -D -m 0755 "$PREBUILT" /out/github-sim; \
    else \
      cargo build --release --locked -p github-sim --bin github-sim \
      && install -D -m 0755 target/release/github-sim /out/github-sim; \
    fi

FROM ${BASE_IMAGE}
COPY --from=build /out/github-sim /usr/local/bin/github-sim
ENV SIM_LISTEN=0.0.0.0:9000
EXPOSE 9000
USER 65532:65532
# The simulator has no healthcheck subcommand; bash's /dev/tcp checks that
# the port accepts connections (a Debian base, not distroless, has bash).
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=5 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${SIM_LISTEN##*:}"]
ENTRYPOINT ["/usr/local/bin/github-sim"]
