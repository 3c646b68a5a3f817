# gha-api-gateway: the public entry point (API keys, rate limits, CORS,
# OpenAPI/Swagger UI), proxying to the orchestrator.
#
# Multi-stage: a Rust builder, then a minimal runtime (distroless `cc`: glibc,
# libgcc, CA certificates; no shell, no package manager). Runs as the
# distroless `nonroot` user (65532); it needs no privilege at all. The
# HEALTHCHECK runs the binary's own `healthcheck` subcommand (no curl).
#
# From source, at the repository root:
#   docker build -f docker/gateway.Dockerfile -t gha-api-gateway .
# From a binary built on the host (machines without a registry):
#   docker build -f docker/gateway.Dockerfile \
#     --build-arg PREBUILT=target/release/gha-api-gateway \
#     --build-arg RUST_IMAGE=gha-base:bookworm --build-arg BASE_IMAGE=gha-base:bookworm .
ARG RUST_IMAGE=rust:1-bookworm
ARG BASE_IMAGE=gcr.io/distroless/cc-debian12

FROM ${RUST_IMAGE} AS build
ARG PREBUILT=""
WORKDIR /src
COPY . .
RUN if [ -n "$PREBUILT" ]; then \
      install -D -m 0755 "$PREBUILT" /out/gha-api-gateway; \
    else \
      cargo build --release --locked -p gateway --bin gha-api-gateway \
      && install -D -m 0755 target/release/gha-api-gateway /out/gha-api-gateway; \
    fi

FROM ${BASE_IMAGE}
COPY --from=build /out/gha-api-gateway /usr/local/bin/gha-api-gateway
ENV API_GATEWAY_HOST=0.0.0.0 \
    API_GATEWAY_PORT=8080
EXPOSE 8080
USER 65532:65532
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/gha-api-gateway", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/gha-api-gateway"]
