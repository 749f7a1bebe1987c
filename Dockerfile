# Build stage: only cargo and a C compiler are needed (SQLite and libpq are bundled).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# Build flags of the bundled SQLite (query planner stability guarantee).
COPY .cargo ./.cargo
COPY src ./src
COPY migrations ./migrations
COPY diesel.toml ./
RUN cargo build --release --locked --bin tandem

# Runtime stage: a slim image, a non-root user, data in a volume.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data tandem \
    && mkdir -p /data && chown tandem /data
COPY --from=build /src/target/release/tandem /usr/local/bin/tandem
USER tandem
WORKDIR /data
VOLUME ["/data"]
# The allocator setting the binary would otherwise restart itself to set (see src/main.rs).
ENV TANDEM_LISTEN=0.0.0.0:8080 \
    TANDEM_DATABASE_URL=sqlite:/data/tandem.db \
    TANDEM_LOG_FORMAT=json \
    MIMALLOC_ARENA_EAGER_COMMIT=0
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tandem"]
CMD ["serve"]
