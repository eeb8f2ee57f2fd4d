# ccgate-server in a slim Debian image, with the agent bundle that
# /install.sh hands to developer machines.
#
# The image compiles nothing: it is made of binaries built first on a Linux
# host (Debian bookworm's glibc or older, so that they run on the image's).
# From a build tree (an unsigned bundle for this platform only):
#
#   cargo build --release -p ccgate-server -p ccgate -p ccgate-proxy
#   docker build -t ccgate-server .
#
# From a signed release made by scripts/release.sh (dist/ccgate-server and
# the bundle dist/agent/, every platform it holds; devices update from it):
#
#   scripts/release.sh --key ~/ccgate-release-key/ccgate-release.key
#   docker build --build-arg BUNDLE=dist -t ccgate-server .
#
# Then:
#   docker run -d --name ccgate -p 3000:3000 -v ccgate-data:/data \
#       -e ADMIN_PASSWORD='choose a long password' ccgate-server
#
# In the image: /usr/local/bin/ccgate-server, run as uid 10001 ("ccgate");
# the agent bundle in /opt/ccgate/agent (AGENT_DIR: SHA256SUMS, VERSION,
# ccgate-<os>-<arch>, ccgate-proxy-<os>-<arch>, SHA256SUMS.minisig when
# signed); the volume /data (DATA_DIR: ccgate.db and secret.key).
# docker-compose.yml puts Caddy in front for HTTPS; docs/operations.md,
# "The container image", says more.

# The files, put in place in a stage of their own so that the image holds
# each binary once.
FROM debian:bookworm-slim AS files
ARG BUNDLE=
# .dockerignore lets only the binaries and dist/ through.
COPY . /context/
RUN set -eu; \
    mkdir -p /out/usr/local/bin /out/opt/ccgate; \
    if [ -n "$BUNDLE" ]; then \
      from="/context/$BUNDLE"; \
      if [ ! -f "$from/agent/SHA256SUMS" ] || [ ! -f "$from/ccgate-server" ]; then \
        echo "$BUNDLE/ccgate-server or $BUNDLE/agent/SHA256SUMS is missing: make the release with scripts/release.sh --out $BUNDLE" >&2; \
        exit 1; \
      fi; \
      cp "$from/ccgate-server" /out/usr/local/bin/; \
      cp -R "$from/agent" /out/opt/ccgate/agent; \
      cd /out/opt/ccgate/agent; \
      sha256sum --check --quiet SHA256SUMS; \
    else \
      from=/context/target/release; \
      for program in ccgate-server ccgate ccgate-proxy; do \
        if [ ! -f "$from/$program" ]; then \
          echo "target/release/$program is missing: run cargo build --release -p ccgate-server -p ccgate -p ccgate-proxy first" >&2; \
          exit 1; \
        fi; \
      done; \
      case "$(uname -m)" in \
        x86_64|amd64) platform=linux-x86_64 ;; \
        aarch64|arm64) platform=linux-aarch64 ;; \
        *) echo "no ccgate build for $(uname -m)" >&2; exit 1 ;; \
      esac; \
      cp "$from/ccgate-server" /out/usr/local/bin/; \
      mkdir /out/opt/ccgate/agent; \
      cd /out/opt/ccgate/agent; \
      cp "$from/ccgate" "ccgate-$platform"; \
      cp "$from/ccgate-proxy" "ccgate-proxy-$platform"; \
      sha256sum "ccgate-$platform" "ccgate-proxy-$platform" > SHA256SUMS; \
      "$from/ccgate" --version | cut -d ' ' -f 2 > VERSION; \
    fi; \
    chmod -R u=rwX,go=rX /out; \
    chmod 0755 /out/usr/local/bin/ccgate-server

FROM debian:bookworm-slim
COPY --from=files /out/ /
RUN groupadd --gid 10001 ccgate \
    && useradd --uid 10001 --gid ccgate --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin ccgate \
    && mkdir -p /data \
    && chown ccgate:ccgate /data \
    && chmod 0700 /data

ENV DATA_DIR=/data \
    AGENT_DIR=/opt/ccgate/agent \
    BIND=0.0.0.0 \
    PORT=3000
VOLUME ["/data"]
EXPOSE 3000
USER 10001:10001
WORKDIR /data

# bash's /dev/tcp: the slim image has no curl, and the check needs nothing else.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/\"${PORT:-3000}\" && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && grep -q '\"status\":\"ok\"' <&3"]

ENTRYPOINT ["/usr/local/bin/ccgate-server"]
