#!/usr/bin/env bash
# Makes a signed release for this machine's target:
#
#   scripts/release.sh --key PATH/ccgate-release.key [--version V] [--out dist]
#
# The binaries are built with the key's public key built in
# (CCGATE_RELEASE_PUBKEY), so the daemons they become trust updates signed
# with it. Writes dist/agent/ (the bundle the server serves: AGENT_DIR),
# dist/ccgate-V-<platform>.tar.gz (the agent for people) and
# dist/ccgate-server. Make the key once with:
#   cargo run -p ccgate-release -- keygen --out ~/ccgate-release-key
set -euo pipefail
cd "$(dirname "$0")/.."

key="" version="" out="dist"
while [ $# -gt 0 ]; do
  case "$1" in
    --key) key=$2; shift 2 ;;
    --version) version=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ -n "$key" ] || { echo "usage: scripts/release.sh --key FILE [--version V] [--out DIR]" >&2; exit 2; }
if [ -z "$version" ]; then
  version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
fi

cargo build --release -p ccgate-release
pubkey=$(target/release/ccgate-release public-key --key "$key")
CCGATE_RELEASE_PUBKEY="$pubkey" cargo build --release -p ccgate -p ccgate-proxy -p ccgate-server

rm -rf "$out/agent"
target/release/ccgate-release bundle --version "$version" --key "$key" --out "$out/agent" \
  --binaries-dir target/release
platform="$(uname -s | tr '[:upper:]' '[:lower:]' | sed 's/darwin/macos/')-$(uname -m | sed 's/arm64/aarch64/;s/amd64/x86_64/')"
tar -C target/release -czf "$out/ccgate-$version-$platform.tar.gz" ccgate ccgate-proxy
cp target/release/ccgate-server "$out/ccgate-server"
echo "release $version for $platform in $out (public key $pubkey)"
