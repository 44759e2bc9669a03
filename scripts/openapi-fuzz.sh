#!/usr/bin/env bash
# Runs schemathesis, an independent OpenAPI fuzzer, against the real service:
# every operation of the GET /openapi.json the running service serves (the
# document of its own configuration: security only where it is enforced),
# every check (`--checks all`: server errors, undocumented statuses / content
# types / headers, response schemas, positive data refused, negative data
# accepted, missing or wrong credentials accepted, unsupported methods), in
# bounded time, in both authentication modes:
#
#   with clients     pass 1: as a known client; pass 2: with an unknown
#                    token. `auth.metrics` is on and `auth.health` off, so
#                    both kinds of route that may or may not need a client
#                    are covered;
#   without clients  pass 3: no credentials at all, as `proxy-delegate serve`
#                    runs without a configuration file. Authentication is
#                    off, the document declares no security, and nothing may
#                    be reported as "accepts requests without authentication".
#
# Exits non-zero when schemathesis finds anything.
#
#   scripts/openapi-fuzz.sh                # a few minutes on 2 cores
#   MAX_EXAMPLES=1000 SEED=7 scripts/openapi-fuzz.sh
#   scripts/openapi-fuzz.sh --max-failures 1 --report har
#                                          # extra arguments go to every pass
#
# schemathesis is installed with pip into target/schemathesis-venv the first
# time (PyPI must be reachable then). The service is built into, and run from,
# $CARGO_TARGET_DIR (default target/), on 127.0.0.1, with test
# configurations: two made-up proxies on documentation addresses, no rate
# limit, one bearer client or none. Each service is always stopped, however
# the script ends. $OPENAPI_FUZZ_WORK (default target/openapi-fuzz) holds the
# configurations, the documents as served, the logs and the reports.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/target/schemathesis-venv"
SCHEMATHESIS_VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
MAX_EXAMPLES="${MAX_EXAMPLES:-200}"
# The unknown-token pass gets 401 on every secured route: fewer examples do.
UNKNOWN_TOKEN_EXAMPLES="${UNKNOWN_TOKEN_EXAMPLES:-50}"
SEED="${SEED:-20240923}"
WORKERS="${WORKERS:-2}"
WORK="${OPENAPI_FUZZ_WORK:-$ROOT/target/openapi-fuzz}"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/proxy-delegate"
TOKEN="fuzz-token-for-schemathesis"

if [ ! -x "$VENV/bin/schemathesis" ]; then
    echo "installing schemathesis $SCHEMATHESIS_VERSION into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi
"$VENV/bin/schemathesis" --version >&2

cargo build --quiet -p proxy-delegate
mkdir -p "$WORK"
PROXIES='
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
regions = ["eu-west-1"]'
printf '%s\n' \
    'listen = "127.0.0.1:0"' \
    'status_refresh_seconds = 5' \
    '' \
    '[auth]' \
    'metrics = true' \
    '' \
    '[rate_limit]' \
    'enabled = false' \
    '' \
    '[[clients]]' \
    'name = "fuzzer"' \
    "bearer_tokens = [\"$TOKEN\"]" \
    "$PROXIES" >"$WORK/service.toml"
printf '%s\n' \
    'listen = "127.0.0.1:0"' \
    'status_refresh_seconds = 5' \
    '' \
    '[rate_limit]' \
    'enabled = false' \
    "$PROXIES" >"$WORK/service-open.toml"

SERVER_PID=""
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

# Starts the service on the configuration $1, logging to $2; sets SERVER_PID
# and BASE once it prints "listening on http://127.0.0.1:PORT" (at most
# 30 s), and saves the document it serves next to the configuration
# (`service.toml`: `service.openapi.json`).
start_server() {
    local config="$1" log="$2"
    RUST_LOG="${RUST_LOG:-warn}" "$BIN" serve --config "$config" \
        --listen 127.0.0.1:0 >"$log" 2>&1 &
    SERVER_PID=$!
    BASE=""
    for _ in $(seq 1 300); do
        BASE="$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$log" | head -n 1 | sed 's/^listening on //' || true)"
        [ -n "$BASE" ] && break
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "the service exited before listening:" >&2
            cat "$log" >&2
            exit 1
        fi
        sleep 0.1
    done
    if [ -z "$BASE" ]; then
        echo "the service did not print 'listening on' within 30 s:" >&2
        cat "$log" >&2
        exit 1
    fi
    echo "service at $BASE (log: $log)" >&2
    # A file lets schemathesis test GET /openapi.json too, and load the
    # document without credentials.
    "$VENV/bin/python" - "$BASE/openapi.json" "${config%.toml}.openapi.json" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as r, open(sys.argv[2], "wb") as f:
    f.write(r.read())
PY
}

# Fails the run, with the log $1, when the service died during a pass.
check_server() {
    local log="$1" server_status=0
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        wait "$SERVER_PID" 2>/dev/null || server_status=$?
        SERVER_PID=""
        echo "the service exited during the run (status $server_status); its log:" >&2
        cat "$log" >&2
        [ "$STATUS" -ne 0 ] || STATUS=1
    fi
}

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

LOG="$WORK/service.log"
start_server "$WORK/service.toml" "$LOG"
echo "== pass 1: with clients, as a known client (bearer token); missing and wrong credentials are probed by ignored_auth" >&2
run "$MAX_EXAMPLES" "$BASE/openapi.json" --header "Authorization: Bearer $TOKEN" \
    --report junit --report-dir "$WORK/report-known-client" || STATUS=$?
echo "== pass 2: with clients, an unknown bearer token on every operation, GET /openapi.json included" >&2
run "$UNKNOWN_TOKEN_EXAMPLES" "$WORK/service.openapi.json" --url "$BASE" \
    --header "Authorization: Bearer not-a-known-token" \
    --report junit --report-dir "$WORK/report-unknown-token" || STATUS=$?
check_server "$LOG"
stop_server

LOG="$WORK/service-open.log"
start_server "$WORK/service-open.toml" "$LOG"
echo "== pass 3: without clients (authentication off), no credentials; the document declares no security" >&2
run "$MAX_EXAMPLES" "$WORK/service-open.openapi.json" --url "$BASE" \
    --report junit --report-dir "$WORK/report-no-auth" || STATUS=$?
check_server "$LOG"
stop_server

if [ "$STATUS" -ne 0 ]; then
    echo "schemathesis found problems (exit $STATUS); the services' logs are in $WORK" >&2
else
    echo "schemathesis found nothing" >&2
fi
exit "$STATUS"
