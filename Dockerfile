# syntax=docker/dockerfile:1
#
# agent-sidecar's container image: one binary for both Kubernetes roles,
# the injection webhook (`inject-webhook`) and the injected sidecar
# (`serve`). Built by a CI with a registry:
#
#   docker build -t registry.example.com/agent-sidecar:0.1.0 .
#
# (Not built by this repository's own tests, which only check this file:
# tests/tests/kubernetes.rs.) The build stage uses the same toolchain as
# `cargo xtask setup`: Debian's rustc-web, its eBPF standard library and
# bpf-linker built against LLVM 22; agent-sidecar's build script compiles
# the eBPF programs (ebpf/) and embeds the object in the binary.
#
# Capabilities at run time (docs/kubernetes.md#capabilities): the webhook
# needs none and runs as the image's non-root user. The injected sidecar
# runs as uid 0 with all capabilities dropped but CAP_BPF (policy maps and
# programs) and CAP_NET_ADMIN (cgroup socket programs, closing revoked
# connections), set by the webhook in the pod spec, not here.

ARG DEBIAN_RELEASE=bookworm

FROM debian:${DEBIAN_RELEASE} AS build
# Keep equal to BPF_LINKER_VERSION in xtask/src/main.rs (a test checks).
ARG BPF_LINKER_VERSION=0.13.0
ENV DEBIAN_FRONTEND=noninteractive \
    CARGO_HOME=/usr/local/cargo \
    LLVM_PREFIX=/usr/lib/llvm-22 \
    PATH=/usr/lib/llvm-22/bin:/src/.tools/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN apt-get update -q \
    && apt-get install -y -q --no-install-recommends \
        rustc-web cargo-web libstd-rust-web-dev-bpf llvm-22-dev \
        gcc libc6-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# bpf-linker first: a layer of its own, rebuilt only when its version changes.
RUN cargo install bpf-linker --locked --version "${BPF_LINKER_VERSION}" \
        --no-default-features --features llvm-22 --root /src/.tools
COPY Cargo.toml Cargo.lock ./
COPY agent-sidecar agent-sidecar
COPY audit-bench audit-bench
COPY common common
COPY ebpf ebpf
COPY policy-bench policy-bench
COPY test-support test-support
COPY tests tests
COPY xtask xtask
RUN cargo build --release --locked -p agent-sidecar --bin agent-sidecar \
    && install -D -m 0755 target/release/agent-sidecar /out/agent-sidecar

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates: the system roots the sidecar trusts for upstreams (unless
# upstream-ca is set) and the webhook's clients never need.
RUN apt-get update -q \
    && apt-get install -y -q --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/agent-sidecar /usr/local/bin/agent-sidecar
COPY README.md /usr/share/doc/agent-sidecar/
# Non-root by default (the webhook). The injected sidecar's pod spec sets
# runAsUser 0: the pins under the host's bpffs are root-owned.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/agent-sidecar"]
CMD ["--help"]
