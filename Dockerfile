# Multi-stage build of the worker: a static-ish release binary (rustls, no OpenSSL) on a
# small Debian base, running as a non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin grok-video-worker

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home worker
COPY --from=build /src/target/release/grok-video-worker /usr/local/bin/grok-video-worker
USER worker
ENTRYPOINT ["grok-video-worker"]
CMD ["worker"]
