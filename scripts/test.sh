#!/usr/bin/env bash
# Runs every test of the workspace. Installs what the tests need first:
# the real Claude Code CLI and the OpenID provider `oidc-provider` (pinned,
# from npm); PostgreSQL (Debian's package); for the dashboard's browser tests, Debian's chromium and
# chromium-driver; for the container test
# (tests/tests/container.rs), podman, runc and debootstrap, the base image
# debian:bookworm-slim made from Debian's packages, and the release binaries
# the image is made of.
set -euo pipefail
cd "$(dirname "$0")/.."

# Installs the Debian packages that provide the given commands
# (`command:package` each) where a command is missing.
install_debian_packages() {
  local missing=() wanted
  for wanted in "$@"; do
    command -v "${wanted%%:*}" >/dev/null 2>&1 || missing+=("${wanted#*:}")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# Installs the npm packages pinned in DIR's package-lock.json (exact
# versions) with `npm ci`, unless DIR/node_modules already holds what that
# lock names (then nothing is fetched: the tests run offline all the same).
install_npm_packages() {
  local dir=$1
  local stamp="$dir/node_modules/.ccgate-package-lock.json"
  [ -f "$dir/package.json" ] || return 0
  if [ -f "$stamp" ] && cmp -s "$dir/package-lock.json" "$stamp"; then
    return 0
  fi
  npm ci --prefix "$dir" --prefer-offline --no-audit --no-fund --loglevel=error
  cp "$dir/package-lock.json" "$stamp"
}
# The Claude Code CLI; the OpenID provider of the single sign-on tests
# (tests/oidc/provider.mjs, driven by control-server/tests/common/oidc.rs).
install_npm_packages tests/npm
install_npm_packages tests/oidc
# A real PostgreSQL for the PostgreSQL backend's tests
# (control-server/tests/common/postgres.rs starts throwaway clusters, and
# scripts/with-postgres.sh one for the server's tests on PostgreSQL);
# Debian keeps its programs in /usr/lib/postgresql/VERSION/bin.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  install_debian_packages postgres-not-on-path:postgresql
fi
if [ -n "${CCGATE_NEEDS_CHROMIUM:-}" ] || [ -d control-server/assets ]; then
  install_debian_packages chromium:chromium chromedriver:chromium-driver
fi

# The container test builds the Dockerfile with podman (scripts/podman.sh)
# on a base image made here, as no image registry is reachable: Debian's
# minimal system from the apt mirror, imported under the name the
# Dockerfile's FROM gives. Where podman cannot run containers (not root, no
# privileges for them), the test is skipped with the reason, said here.
BASE_IMAGE=docker.io/library/debian:bookworm-slim
skip_container_test() {
  echo "warning: the container test is skipped: $1" >&2
  export CCGATE_SKIP_CONTAINER_TEST="$1"
}
debian_mirror() {
  local mirror
  mirror=$({ grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
             grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}'
           } | grep -m 1 -E '/debian/?$' || true)
  echo "${mirror:-http://deb.debian.org/debian}"
}
make_base_image() {
  local dir
  dir=$(mktemp -d)
  echo "making the base image $BASE_IMAGE from $(debian_mirror)"
  if ! debootstrap --variant=minbase bookworm "$dir/rootfs" "$(debian_mirror)" >"$dir/debootstrap.log" 2>&1; then
    tail -n 20 "$dir/debootstrap.log" >&2
    rm -rf "$dir"
    return 1
  fi
  # Slim as Debian's own: no package lists, caches or documentation.
  rm -rf "$dir"/rootfs/var/lib/apt/lists/* "$dir"/rootfs/var/cache/apt/* \
    "$dir"/rootfs/usr/share/doc/* "$dir"/rootfs/usr/share/man/*
  tar -C "$dir/rootfs" -c . | sh scripts/podman.sh import - "$BASE_IMAGE" >/dev/null
  local status=$?
  rm -rf "$dir"
  return $status
}
prepare_container_test() {
  if [ -n "${CCGATE_SKIP_CONTAINER_TEST:-}" ]; then
    skip_container_test "$CCGATE_SKIP_CONTAINER_TEST"
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    skip_container_test "it needs root (podman's storage, debootstrap)"
    return 0
  fi
  install_debian_packages podman:podman runc:runc debootstrap:debootstrap
  if ! sh scripts/podman.sh image exists "$BASE_IMAGE" && ! make_base_image; then
    skip_container_test "the base image $BASE_IMAGE could not be made (above)"
    return 0
  fi
  if ! sh scripts/podman.sh run --rm --pull=never "$BASE_IMAGE" true; then
    skip_container_test "podman cannot run containers here (above)"
    return 0
  fi
  cargo build --release -p ccgate-server -p ccgate -p ccgate-proxy
}
prepare_container_test

# The install-script tests download these binaries from the test server.
cargo build -p ccgate -p ccgate-proxy
cargo test --workspace "$@"

# The control server's tests once more with the record in PostgreSQL: one
# throwaway cluster for the run, a database per test server.
scripts/with-postgres.sh cargo test -p ccgate-server --tests "$@"
