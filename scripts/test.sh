#!/usr/bin/env bash
# The whole test suite, as a newcomer and CI run it. Installs what the suite
# needs when it is missing, then runs:
#   1. the core's and the embassy adapter's builds for a bare-metal target
#      (thumbv7em-none-eabihf, no std), and the gateway firmware
#      (examples/gateway-firmware) run in QEMU's emulated Cortex-M4F, its
#      footprint printed (scripts/gateway-qemu.sh, scripts/gateway-footprint.sh),
#   2. a short smoke run of every fuzz target from its seed corpus
#      (scripts/fuzz.sh is the longer run; docs/fuzzing.md),
#   3. cargo test for the whole workspace (the service's tests include a
#      real headless chromium rendering its status page; the client's DNS SRV
#      tests a real dnsmasq on 127.0.0.1; the injector's tests real tinyproxy,
#      microsocks and `ssh -D` proxies on 127.0.0.1),
#   4. an OpenAPI fuzzer (schemathesis) against the real service binary,
# and ends with one "N passed, N failed" line.
#
# Environment:
#   FUZZ_SECONDS   seconds per fuzz target (default 20; 0 skips fuzzing)
#   OPENAPI_FUZZ   0 skips the schemathesis run (default 1)
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
EMBEDDED_TARGET=thumbv7em-none-eabihf
log() { printf '\n==> %s\n' "$*"; }

# ---------------------------------------------------------------- installs
apt_updated=0
apt_install() {
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  if [ "$apt_updated" = 0 ]; then
    "${sudo[@]}" apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@"
}

# The status page is checked in a real headless browser: Debian's chromium.
if ! command -v chromium >/dev/null 2>&1; then
  log "installing chromium (the status-page browser test)"
  apt_install chromium fonts-liberation fonts-dejavu-core
fi

# SRV discovery is tested against a real DNS server on 127.0.0.1: Debian's
# dnsmasq. dnsmasq-base is the binary alone: unlike the dnsmasq package, it
# installs no system service that would start a DNS server on port 53.
if ! command -v dnsmasq >/dev/null 2>&1 && [ ! -x /usr/sbin/dnsmasq ]; then
  log "installing dnsmasq (the DNS SRV discovery tests)"
  apt_install dnsmasq-base
fi

# The injector's tests tunnel through real proxies on 127.0.0.1: tinyproxy
# (HTTP CONNECT, BasicAuth) and microsocks (SOCKS5, username/password).
if ! command -v tinyproxy >/dev/null 2>&1; then
  log "installing tinyproxy (the injector's HTTP proxy tests)"
  apt_install tinyproxy
fi
if ! command -v microsocks >/dev/null 2>&1; then
  log "installing microsocks (the injector's SOCKS5 proxy tests)"
  apt_install microsocks
fi
# SOCKS4 and SOCKS4a (which microsocks does not speak): OpenSSH's dynamic
# forwarding, `ssh -D`, through an sshd the tests start on 127.0.0.1.
if [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null 2>&1; then
  log "installing openssh-server and openssh-client (the injector's SOCKS4/4a tests)"
  apt_install openssh-server openssh-client
fi

if ! rustup target list --installed | grep -qx "$EMBEDDED_TARGET"; then
  log "installing the $EMBEDDED_TARGET target"
  rustup target add "$EMBEDDED_TARGET"
fi

# The gateway firmware runs on an emulated Cortex-M4F: Debian's
# qemu-system-arm (its mps2-an386 machine). Its footprint is read from the
# ELF with llvm-size and llvm-nm: rustup's llvm-tools component.
if ! command -v qemu-system-arm >/dev/null 2>&1; then
  log "installing qemu-system-arm (the gateway firmware's emulated Cortex-M4F)"
  apt_install qemu-system-arm
fi
if [ ! -x "$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-size" ]; then
  log "installing rustup's llvm-tools (the gateway footprint report)"
  rustup component add llvm-tools
fi

# Fuzzing needs nightly (sanitizer flags). If nightly cannot be installed, the
# stable toolchain is told to accept nightly flags instead (RUSTC_BOOTSTRAP=1).
FUZZ_TOOLCHAIN=+nightly
FUZZ_ENV=()
if [ "$FUZZ_SECONDS" != 0 ]; then
  if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    log "installing the nightly toolchain for fuzzing"
    if ! rustup toolchain install nightly --profile minimal; then
      log "nightly unavailable: fuzzing with the stable toolchain and RUSTC_BOOTSTRAP=1"
      FUZZ_TOOLCHAIN=+stable
      FUZZ_ENV=(RUSTC_BOOTSTRAP=1)
    fi
  fi
  if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
  fi
fi

# ---------------------------------------------------------------- 1. no_std build
log "building proxy-delegate-core for $EMBEDDED_TARGET (no_std, no default features)"
cargo build -p proxy-delegate-core --target "$EMBEDDED_TARGET" --no-default-features
log "building proxy-delegate-embassy for $EMBEDDED_TARGET (no_std, the embassy adapter)"
cargo build -p proxy-delegate-embassy --target "$EMBEDDED_TARGET"

log "the gateway firmware in QEMU (scripts/gateway-qemu.sh)"
scripts/gateway-qemu.sh
scripts/gateway-footprint.sh

# ---------------------------------------------------------------- 2. fuzz smoke
# Every target, built once, runs from a copy of its committed seed corpus
# (fuzz/corpus/<target>/), so the run never changes a tracked file.
# scripts/fuzz.sh runs them for longer and minimises the corpus.
if [ "$FUZZ_SECONDS" != 0 ]; then
  log "building the fuzz targets"
  (cd fuzz && env "${FUZZ_ENV[@]}" cargo "$FUZZ_TOOLCHAIN" fuzz build)
  fuzz_work=$(mktemp -d)
  for target in $(cd fuzz && cargo fuzz list); do
    log "fuzzing $target for ${FUZZ_SECONDS}s"
    mkdir -p "$fuzz_work/$target"
    if [ -d "fuzz/corpus/$target" ]; then
      cp -a "fuzz/corpus/$target/." "$fuzz_work/$target/"
    fi
    fuzz_log=$(mktemp)
    if (cd fuzz && env "${FUZZ_ENV[@]}" cargo "$FUZZ_TOOLCHAIN" fuzz run "$target" "$fuzz_work/$target" -- \
      -max_total_time="$FUZZ_SECONDS" -print_final_stats=1) >"$fuzz_log" 2>&1; then
      tail -n 12 "$fuzz_log"
    else
      cat "$fuzz_log"
      echo "fuzz target $target failed: the crashing input is under fuzz/artifacts/$target/" >&2
      echo "reproduce it with: cd fuzz && cargo +nightly fuzz run $target artifacts/$target/<file> (docs/fuzzing.md)" >&2
      rm -rf "$fuzz_work"
      exit 1
    fi
    rm -f "$fuzz_log"
  done
  rm -rf "$fuzz_work"
fi

# ---------------------------------------------------------------- 3. tests
# proxy-delegate-tokio's dns-srv feature is off by default: test it too.
log "cargo test --workspace --features proxy-delegate-tokio/dns-srv"
results=$(mktemp)
trap 'rm -f "$results"' EXIT
set +e
cargo test --workspace --features proxy-delegate-tokio/dns-srv 2>&1 | tee "$results"
status=${PIPESTATUS[0]}
set -e
summary=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$results")
echo "$summary"
[ "$status" = 0 ] || exit "$status"

# ---------------------------------------------------------------- 4. OpenAPI fuzz
if [ "${OPENAPI_FUZZ:-1}" != 0 ]; then
  log "schemathesis against the real service (scripts/openapi-fuzz.sh)"
  scripts/openapi-fuzz.sh
fi
echo "$summary"
