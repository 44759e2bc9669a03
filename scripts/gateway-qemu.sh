#!/usr/bin/env bash
# Builds the gateway firmware (examples/gateway-firmware, for the Cortex-M4F
# of QEMU's mps2-an386 machine) and runs it in qemu-system-arm with a time
# limit. Passes only if the firmware exits 0 and printed every step of its
# scripted service conversation, each ending in "ok" (docs/gateway.md).
#
# Needs Debian's qemu-system-arm and the thumbv7em-none-eabihf target
# (scripts/test.sh installs both when missing).
#
# Environment:
#   CARGO_TARGET_DIR       where to build (default: the repository's target/)
#   GATEWAY_QEMU_TIMEOUT   seconds QEMU may run (default 60)
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=thumbv7em-none-eabihf
TIMEOUT="${GATEWAY_QEMU_TIMEOUT:-60}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# The steps the firmware must print, in order ("step N <name>: ... ok").
STEPS=("cache miss" "service answer" "cache hit" "service failures" "breaker open" "recovery" "feedback")

if ! command -v qemu-system-arm >/dev/null 2>&1; then
  echo "gateway-qemu: qemu-system-arm not found: apt-get install qemu-system-arm (scripts/test.sh does)" >&2
  exit 1
fi
if ! rustup target list --installed | grep -qx "$TARGET"; then
  echo "gateway-qemu: the $TARGET target is missing: rustup target add $TARGET (scripts/test.sh does)" >&2
  exit 1
fi

start=$(date +%s)
# The firmware's .cargo/config.toml passes the linker script in its
# rustflags, which RUSTFLAGS from the environment would replace.
(cd examples/gateway-firmware && env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS cargo build --release --locked)
built=$(date +%s)
elf="$CARGO_TARGET_DIR/$TARGET/release/gateway-firmware"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
set +e
timeout "$TIMEOUT" qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic \
  -semihosting-config enable=on,target=native -kernel "$elf" >"$out" 2>&1
status=$?
set -e
cat "$out"
ran=$(date +%s)

fail() {
  echo "gateway-qemu: FAILED: $*" >&2
  exit 1
}
case "$status" in
  0) ;;
  124) fail "the firmware did not finish within ${TIMEOUT}s" ;;
  *) fail "the firmware exited with status $status" ;;
esac
n=0
for name in "${STEPS[@]}"; do
  n=$((n + 1))
  grep -qE "^step $n $name: .* ok\$" "$out" || fail "no line \"step $n $name: ... ok\""
done
grep -qx "all $n steps ok" "$out" || fail "no line \"all $n steps ok\""
! grep -q "FAILED" "$out" || fail "the firmware reported a failure"
# The password of the script's proxy URLs (SECRET in src/main.rs) must never
# be printed: URLs print redacted.
! grep -q "gw-s3cret" "$out" || fail "the firmware printed a proxy password"
echo "gateway-qemu: all $n steps ok (build $((built - start))s, QEMU run $((ran - built))s)"
