# Shared by scripts/run and scripts/test: install missing Debian packages, configure and build.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Debian bookworm packages the build needs (DESIGN.md's table, as far as the code uses it now).
BUILD_PACKAGES=(g++ meson ninja-build pkg-config dpkg-dev
  libasio-dev android-libboringssl-dev libsqlite3-dev libfmt-dev libcli11-dev catch2 nlohmann-json3-dev libsimdjson-dev
  libsodium-dev libcrypt-dev libc-ares-dev libpcre2-dev)
# What the tests drive the server with (swaks needs libnet-ssleay-perl for TLS, a Recommends
# that --no-install-recommends leaves out).
TEST_PACKAGES=(openssl python3 swaks libnet-ssleay-perl postfix curl fetchmail dovecot-pop3d dovecot-imapd isync)

ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  # The tests run their own private Postfix instance; the system one stays unconfigured and off.
  if printf '%s\n' "${missing[@]}" | grep -qx postfix; then
    echo "postfix postfix/main_mailer_type select No configuration" | "${sudo[@]}" debconf-set-selections
  fi
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# build DIR [meson options...]: configure once, then an incremental ninja build.
build() {
  local dir="$1"; shift
  local log rc=0
  if [ ! -f "$ROOT/$dir/build.ninja" ]; then
    log="$(meson setup "$ROOT/$dir" "$ROOT" "$@" 2>&1)" || { echo "$log" | tail -n 30; rm -rf "${ROOT:?}/$dir"; return 1; }
  fi
  log="$(ninja -C "$ROOT/$dir" -j2 2>&1)" || rc=$?
  [ $rc -ne 0 ] && echo "$log" | grep -v '^\[' | tail -n 60
  return $rc
}
