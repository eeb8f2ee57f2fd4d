#!/usr/bin/env bash
# Runs every test of the workspace. Installs what the tests need first:
# the real Claude Code CLI (pinned, from npm) and, for the dashboard's browser
# tests, Debian's chromium and chromium-driver.
set -euo pipefail
cd "$(dirname "$0")/.."

install_debian_packages() {
  local missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

if [ -f tests/npm/package.json ]; then
  npm ci --prefix tests/npm --no-audit --no-fund --loglevel=error
fi
if [ -n "${CCGATE_NEEDS_CHROMIUM:-}" ] || [ -d control-server/assets ]; then
  install_debian_packages
fi

# The install-script tests download these binaries from the test server.
cargo build -p ccgate -p ccgate-proxy
cargo test --workspace "$@"
