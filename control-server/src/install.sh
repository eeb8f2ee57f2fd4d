#!/bin/sh
# ccgate installer, served by the ccgate server at @SERVER_URL@.
#
#   curl -fsSL @SERVER_URL@/install.sh | sudo sh -s -- --code CODE [ccgate setup flags]
#
# Downloads ccgate and ccgate-proxy for this machine from that server,
# checks them against the server's SHA256SUMS (and, when this machine
# trusts a release key, the signature over it), installs them root-owned in
# /usr/local/bin (under --root DIR if given) and runs `ccgate setup` with
# the code, this server and every other flag given. A failed check changes
# nothing; running it again upgrades.
set -eu

SERVER='@SERVER_URL@'
NOTE='@SERVER_NOTE@'

say() { printf 'ccgate install: %s\n' "$*" >&2; }
fail() { say "$*"; exit 1; }

code=''
root='/'
# The flags for `ccgate setup`, kept quoted in the positional parameters.
passed=''
while [ $# -gt 0 ]; do
  case "$1" in
    --code) [ $# -ge 2 ] || fail "--code needs a value"; code=$2; shift 2; continue ;;
    --code=*) code=${1#--code=}; shift; continue ;;
    --root) [ $# -ge 2 ] || fail "--root needs a value"; root=$2 ;;
    --root=*) root=${1#--root=} ;;
    --server|--server=*) fail "the server is the one this script came from ($SERVER); leave out --server" ;;
  esac
  passed="$passed '$(printf '%s' "$1" | sed "s/'/'\\\\''/g")'"
  shift
done
[ -n "$code" ] || fail "usage: sh install.sh --code CODE [ccgate setup flags]; ask your ccgate admin for a code"

case "$SERVER" in
  https://*) ;;
  http://127.0.0.1[:/]*|http://127.0.0.1|http://localhost[:/]*|http://localhost|http://\[::1\]*) ;;
  http://*)
    case "$passed" in
      *"'--insecure'"*) say "warning: $SERVER is plain http; the binaries could be changed on the way (you gave --insecure)" ;;
      *) fail "$SERVER is plain http: the binaries and the install code would cross the network unprotected. Put the server behind https, or add --insecure." ;;
    esac ;;
  *) fail "unexpected server address: $SERVER" ;;
esac

[ "$(id -u)" -eq 0 ] || fail "run it as root: ... | sudo sh -s -- --code $code"

case "$(uname -s)" in
  Linux) os=linux ;;
  Darwin) os=macos ;;
  *) fail "no ccgate build for $(uname -s); ccgate runs on Linux and macOS" ;;
esac
case "$(uname -m)" in
  x86_64|amd64) arch=x86_64 ;;
  aarch64|arm64) arch=aarch64 ;;
  *) fail "no ccgate build for $(uname -m) on $os" ;;
esac

if command -v curl >/dev/null 2>&1; then
  fetch() { curl -fsS --proto '=https,http' -o "$2" "$SERVER/downloads/$1"; }
elif command -v wget >/dev/null 2>&1; then
  fetch() { wget -q -O "$2" "$SERVER/downloads/$1"; }
else
  fail "neither curl nor wget is installed"
fi
if command -v sha256sum >/dev/null 2>&1; then
  sha256() { sha256sum "$1" | cut -d ' ' -f 1; }
elif command -v shasum >/dev/null 2>&1; then
  sha256() { shasum -a 256 "$1" | cut -d ' ' -f 1; }
else
  fail "neither sha256sum nor shasum is installed"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
[ -z "$NOTE" ] || say "$NOTE"
fetch SHA256SUMS "$work/SHA256SUMS" || fail "cannot download $SERVER/downloads/SHA256SUMS"

for program in ccgate ccgate-proxy; do
  file="$program-$os-$arch"
  expected=$(awk -v f="$file" '$2 == f || $2 == "*" f { print $1 }' "$work/SHA256SUMS")
  [ -n "$expected" ] || fail "the server has no $program for $os $arch"
  fetch "$file" "$work/$program" || fail "cannot download $SERVER/downloads/$file"
  actual=$(sha256 "$work/$program")
  [ "$actual" = "$expected" ] || fail "$file does not match the server's checksum (expected $expected, got $actual); nothing was installed"
done
chmod 0755 "$work/ccgate" "$work/ccgate-proxy"
signature=''
if fetch SHA256SUMS.minisig "$work/SHA256SUMS.minisig" 2>/dev/null; then
  signature="$work/SHA256SUMS.minisig"
fi
bin="${root%/}/usr/local/bin"
# The signature is checked with the keys this machine trusts, before
# anything is installed, by the ccgate already installed here if there is
# one (a server cannot hand it a checker that says yes), else by the one
# just downloaded.
checker="$work/ccgate"
[ -x "$bin/ccgate" ] && checker="$bin/ccgate"
if ! "$checker" --root "$root" verify-release --sums "$work/SHA256SUMS" \
    ${signature:+--signature "$signature"} --dir "$work" >&2; then
  fail "the release does not check out; nothing was installed"
fi

mkdir -p "$bin"
for program in ccgate ccgate-proxy; do
  # Copied beside its place, then renamed over it: a running copy is never
  # half-written.
  cp "$work/$program" "$bin/.$program.new"
  chown 0:0 "$bin/.$program.new" 2>/dev/null || true
  chmod 0755 "$bin/.$program.new"
  mv -f "$bin/.$program.new" "$bin/$program"
done
say "installed ccgate and ccgate-proxy in $bin"

eval "set -- $passed"
# Not exec: the trap removes the download directory afterwards.
"$bin/ccgate" setup --code "$code" --server "$SERVER" "$@"
