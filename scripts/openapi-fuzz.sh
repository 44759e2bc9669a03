#!/usr/bin/env bash
# Runs schemathesis, an independent OpenAPI fuzzer, against the real service:
# every operation of GET /openapi.json, every check (`--checks all`: server
# errors, undocumented statuses / content types / headers, response schemas,
# positive data refused, negative data accepted, missing or wrong credentials
# accepted, unsupported methods), in bounded time, in two passes: as a known
# client, and with an unknown token. Exits non-zero when schemathesis finds
# anything.
#
#   scripts/openapi-fuzz.sh                # well under 3 minutes on 2 cores
#   MAX_EXAMPLES=1000 SEED=7 scripts/openapi-fuzz.sh
#   scripts/openapi-fuzz.sh --max-failures 1 --report har
#                                          # extra arguments go to both passes
#
# schemathesis is installed with pip into target/schemathesis-venv the first
# time (PyPI must be reachable then). The service runs from
# target/debug/proxy-delegate on 127.0.0.1 with a test configuration: one
# bearer client, two made-up proxies on documentation addresses, no rate
# limit. It is always stopped, however the script ends.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/target/schemathesis-venv"
SCHEMATHESIS_VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
MAX_EXAMPLES="${MAX_EXAMPLES:-200}"
# The unknown-token pass only ever gets 401: fewer examples do.
UNKNOWN_TOKEN_EXAMPLES="${UNKNOWN_TOKEN_EXAMPLES:-50}"
SEED="${SEED:-20240923}"
WORKERS="${WORKERS:-2}"
WORK="$ROOT/target/openapi-fuzz"
TOKEN="fuzz-token-for-schemathesis"

if [ ! -x "$VENV/bin/schemathesis" ]; then
    echo "installing schemathesis $SCHEMATHESIS_VERSION into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi
"$VENV/bin/schemathesis" --version >&2

cargo build --quiet -p proxy-delegate
mkdir -p "$WORK"
CONFIG="$WORK/service.toml"
cat >"$CONFIG" <<EOF
listen = "127.0.0.1:0"
status_refresh_seconds = 5

[rate_limit]
enabled = false

[[clients]]
name = "fuzzer"
bearer_tokens = ["$TOKEN"]

[pool]
strategy = "least_connections"
ttl_seconds = 300

[[proxies]]
id = "fuzz-us-1"
url = "socks5://user:pass@192.0.2.10:1080"
regions = ["us-east-1"]

[[proxies]]
id = "fuzz-eu-1"
url = "http://198.51.100.20:3128"
regions = ["eu-west-1"]
EOF

LOG="$WORK/service.log"
SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
trap stop_server EXIT
trap 'exit 130' INT TERM

RUST_LOG="${RUST_LOG:-warn}" "$ROOT/target/debug/proxy-delegate" serve --config "$CONFIG" \
    --listen 127.0.0.1:0 >"$LOG" 2>&1 &
SERVER_PID=$!

# Wait for "listening on http://127.0.0.1:PORT" (at most 30 s).
BASE=""
for _ in $(seq 1 300); do
    BASE="$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$LOG" | head -n 1 | sed 's/^listening on //' || true)"
    [ -n "$BASE" ] && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "the service exited before listening:" >&2
        cat "$LOG" >&2
        exit 1
    fi
    sleep 0.1
done
if [ -z "$BASE" ]; then
    echo "the service did not print 'listening on' within 30 s:" >&2
    cat "$LOG" >&2
    exit 1
fi
echo "service at $BASE (log: $LOG)" >&2

# The document as served, for the second pass (a file lets schemathesis
# test GET /openapi.json too, and load it without credentials).
"$VENV/bin/python" - "$BASE/openapi.json" "$WORK/openapi.json" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as r, open(sys.argv[2], "wb") as f:
    f.write(r.read())
PY

run() {
    local examples="$1"
    shift
    "$VENV/bin/schemathesis" run "$@" \
        --checks all \
        --max-examples "$examples" \
        --seed "$SEED" \
        --workers "$WORKERS" \
        --request-timeout 15 \
        --continue-on-failure \
        "${EXTRA_ARGS[@]}"
}
EXTRA_ARGS=("$@")

STATUS=0
echo "== pass 1: a known client (bearer token); missing and wrong credentials are probed by ignored_auth" >&2
run "$MAX_EXAMPLES" "$BASE/openapi.json" --header "Authorization: Bearer $TOKEN" \
    --report junit --report-dir "$WORK/report-known-client" || STATUS=$?
echo "== pass 2: an unknown bearer token on every operation, GET /openapi.json included" >&2
run "$UNKNOWN_TOKEN_EXAMPLES" "$WORK/openapi.json" --url "$BASE" --header "Authorization: Bearer not-a-known-token" \
    --report junit --report-dir "$WORK/report-unknown-token" || STATUS=$?

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    SERVER_STATUS=0
    wait "$SERVER_PID" 2>/dev/null || SERVER_STATUS=$?
    SERVER_PID=""
    echo "the service exited during the run (status $SERVER_STATUS); its log:" >&2
    cat "$LOG" >&2
    [ "$STATUS" -ne 0 ] || STATUS=1
fi
if [ "$STATUS" -ne 0 ]; then
    echo "schemathesis found problems (exit $STATUS); the service log is $LOG" >&2
else
    echo "schemathesis found nothing" >&2
fi
exit "$STATUS"
