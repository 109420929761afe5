# flowfed's image for users with a container engine and a registry at hand:
#   docker build -t registry.example/flowfed/flowfed:0.1.0 . && docker push ...
# A static musl binary on distroless "static" (CA certificates, /etc/passwd,
# no shell), running as the numeric non-root user the chart expects.
# `make image` builds the same content here without a daemon (scripts/image.sh).

FROM rust:1.95-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl \
 && apt-get update && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target x86_64-unknown-linux-musl -p flowfed --bin flowfed \
 && cp target/x86_64-unknown-linux-musl/release/flowfed /flowfed

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /flowfed /flowfed
USER 65532:65532
ENTRYPOINT ["/flowfed"]
CMD ["run"]
