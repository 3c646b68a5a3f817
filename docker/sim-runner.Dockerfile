# The runner stand-in: an image shaped like the official runner image
# (user `runner`, uid 1001, `/home/runner/run.sh`) whose run.sh is
# `sim-runner`, which talks to the GitHub simulator instead of GitHub.
#
# From source (any machine that can pull the Rust image), at the repository root:
#   docker build -f docker/sim-runner.Dockerfile -t gha-sim-runner .
# From a binary built on the host (machines without a registry): put the binary
# alone in a context directory and substitute the build stage's image:
#   docker build -f docker/sim-runner.Dockerfile --build-arg PREBUILT=sim-runner \
#     --build-arg RUST_IMAGE=gha-base:bookworm --build-arg BASE_IMAGE=gha-base:bookworm DIR
ARG RUST_IMAGE=rust:1-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

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
RUN useradd --uid 1001 --create-home --home-dir /home/runner runner
COPY --from=build /out/sim-runner /usr/local/bin/sim-runner
RUN ln -s /usr/local/bin/sim-runner /home/runner/run.sh
USER 1001
WORKDIR /home/runner
CMD ["/home/runner/run.sh"]
