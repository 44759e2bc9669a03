#!/usr/bin/env bash
# Prints the gateway firmware's footprint (BENCHMARKS.md, "Gateway
# footprint"): the RAM of the Resolver and of the other statics, and the
# flash (text + read-only data), read from the release ELF of
# examples/gateway-firmware with llvm-size and llvm-nm from rustup's
# llvm-tools component; and issue 16's targets next to them. Builds the
# firmware first (a no-op when it is up to date).
#
# Environment:
#   CARGO_TARGET_DIR   where to build (default: the repository's target/)
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=thumbv7em-none-eabihf
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
RESOLVER_TARGET=$((32 * 1024))
FLASH_TARGET=$((128 * 1024))

bin="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin"
if [ ! -x "$bin/llvm-size" ] || [ ! -x "$bin/llvm-nm" ]; then
  echo "gateway-footprint: llvm-size not found: rustup component add llvm-tools (scripts/test.sh does)" >&2
  exit 1
fi

# RUSTFLAGS from the environment would replace the linker script the
# firmware's .cargo/config.toml passes.
(cd examples/gateway-firmware && env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS cargo build --release --locked --quiet)
elf="$CARGO_TARGET_DIR/$TARGET/release/gateway-firmware"

# Section sizes (llvm-size -A: name, size, address).
section() { "$bin/llvm-size" -A "$elf" | awk -v s="$1" '$1 == s { print $2 + 0; found = 1 } END { if (!found) print 0 }'; }
# The size of a static of the firmware, by its Rust path.
static_size() {
  local hex
  # Demangled names end in their hash: gateway_firmware::RESOLVER::h0123...
  hex=$("$bin/llvm-nm" -S -C "$elf" | awk -v n="gateway_firmware::$1" '$4 == n || index($4, n "::h") == 1 { print $2; exit }')
  if [ -z "$hex" ]; then
    echo "gateway-footprint: no static $1 in $elf" >&2
    exit 1
  fi
  echo $((16#$hex))
}

vectors=$(section .vector_table)
text=$(section .text)
rodata=$(section .rodata)
data=$(section .data)
bss=$(section .bss)
flash=$((vectors + text + rodata + data))
resolver=$(static_size RESOLVER) || exit 1
settings=$(static_size SETTINGS) || exit 1
harness=$(static_size GATEWAY) || exit 1

kib() { awk -v b="$1" 'BEGIN { printf "%.1f KiB", b / 1024 }'; }
verdict() { if [ "$1" -le "$2" ]; then echo "within"; else echo "over by $(kib $(($1 - $2)))"; fi; }

printf 'gateway footprint (%s, opt-level "s", LTO)\n' "$TARGET"
printf '  RAM  Resolver<_, 32, 2, 32, 4, 8>  %7d B  (%s)  issue target %s: %s\n' \
  "$resolver" "$(kib "$resolver")" "$(kib $RESOLVER_TARGET)" "$(verdict "$resolver" $RESOLVER_TARGET)"
printf '  RAM  embedded configuration      %7d B  (%s)\n' "$settings" "$(kib "$settings")"
printf '  RAM  the script'"'"'s harness        %7d B  (%s)\n' "$harness" "$(kib "$harness")"
printf '  RAM  all statics (.data + .bss)  %7d B  (%s)\n' $((data + bss)) "$(kib $((data + bss)))"
printf '  FLASH text %d + rodata %d + vector table %d + data %d = %d B  (%s)  issue target %s: %s\n' \
  "$text" "$rodata" "$vectors" "$data" "$flash" "$(kib "$flash")" "$(kib $FLASH_TARGET)" "$(verdict "$flash" $FLASH_TARGET)"
echo "  (each static is a StaticCell: its value + 8 B; the stack's high-water marks"
echo "   are measured by the firmware itself: scripts/gateway-qemu.sh)"
