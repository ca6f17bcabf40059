# The mesh image: every mesh binary in one image (and the lab's echo workload, mesh-workload,
# for the examples), which the chart runs as the control plane and
# the injector puts into meshed pods as the sidecar (mesh-proxy) and init container (mesh-init).
#
#   scripts/kind-image                        # builds mesh:<workspace version>, loads it into kind
#   docker build -t mesh:0.1.0 .              # the same build by hand (BuildKit)

# --- build: release binaries ---------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep the crate registry and the build folder between builds; the binaries
# are copied out of the cached target folder before the step ends.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
        -p mesh-control-plane -p mesh-proxy -p mesh-init -p mesh-cli -p mesh-lab \
 && mkdir -p /out \
 && cp target/release/mesh-control-plane target/release/mesh-proxy \
       target/release/mesh-init target/release/mesh target/release/mesh-workload /out/

# --- runtime --------------------------------------------------------------------------------------
FROM debian:bookworm-slim
# iptables: mesh-init applies its rules with iptables-restore on the node's backend, and
# Debian's package has both (iptables-legacy-* and iptables-nft-*).
# ca-certificates: the sidecar's default roots for TLS origination to servers outside the mesh.
RUN apt-get update \
 && apt-get install -y --no-install-recommends iptables ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /usr/local/bin/
# The proxy's uid and gid. mesh-init runs as root through its pod's securityContext; the chart
# runs the control plane as 65532.
USER 1337:1337
CMD ["mesh", "--help"]
