#!/usr/bin/env bash
# Long fuzzing runs: each target runs for --seconds from a working copy of its
# committed corpus (fuzz/work/<target>/, not tracked), then the working copy is
# minimised (cargo fuzz cmin) and written back to fuzz/corpus/<target>/: the
# seed-* files stay as make_corpus wrote them, the minimised inputs that are
# not a seed replace the other files. Review and commit fuzz/corpus/ after.
# scripts/test.sh runs every target briefly; this is the separate, longer run.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: scripts/fuzz.sh [--seconds N] [--jobs J] [target...]

Runs each fuzz target (all of them when none is named; `cargo fuzz list`
names them) for N seconds (default 600) with J parallel workers (default 1;
libFuzzer's -fork=J), starting from a copy of fuzz/corpus/<target>/, then
minimises what it found with `cargo fuzz cmin` into fuzz/corpus/<target>/.

A crash stops the run: the input is in fuzz/artifacts/<target>/, and
  cd fuzz && cargo +nightly fuzz run <target> artifacts/<target>/<file>
reproduces it (docs/fuzzing.md).

Options:
  --seconds N   run time per target, in seconds (default 600)
  --jobs J      parallel fuzzing processes per target (default 1)
  -h, --help    this text

Environment: CARGO_TARGET_DIR is honoured (cargo fuzz builds with its own
flags: keep it apart from the workspace's target directory).
USAGE
}

seconds=600
jobs=1
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="${2:?--seconds needs a value}"; shift 2 ;;
    --seconds=*) seconds="${1#*=}"; shift ;;
    --jobs) jobs="${2:?--jobs needs a value}"; shift 2 ;;
    --jobs=*) jobs="${1#*=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "scripts/fuzz.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
case "$seconds$jobs" in
  *[!0-9]*) echo "scripts/fuzz.sh: --seconds and --jobs take whole numbers" >&2; exit 2 ;;
esac

cd "$(dirname "$0")/../fuzz"

# Nightly for the sanitizer flags, as scripts/test.sh does; without it, the
# stable toolchain told to accept nightly flags.
toolchain=+nightly
fuzz_env=()
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  if ! rustup toolchain install nightly --profile minimal; then
    toolchain=+stable
    fuzz_env=(RUSTC_BOOTSTRAP=1)
  fi
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
fuzz() { env "${fuzz_env[@]}" cargo "$toolchain" fuzz "$@"; }

if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(fuzz list)
fi
fuzz build

for target in "${targets[@]}"; do
  work="work/$target"
  rm -rf "$work"
  mkdir -p "$work" "corpus/$target"
  cp -a "corpus/$target/." "$work/"
  echo "==> $target: ${seconds}s, $jobs job(s), from $(ls "$work" | wc -l) inputs"
  fork=()
  [ "$jobs" -gt 1 ] && fork=(-fork="$jobs")
  if ! fuzz run "$target" "$work" -- -max_total_time="$seconds" -print_final_stats=1 "${fork[@]}"; then
    echo "fuzz target $target failed: the crashing input is under fuzz/artifacts/$target/" >&2
    exit 1
  fi
  echo "==> $target: minimising $(ls "$work" | wc -l) inputs"
  fuzz cmin "$target" "$work"
  # Back into the committed corpus: the seeds as they are, the rest replaced
  # by the minimised inputs that are not a seed (libFuzzer names an input by
  # the SHA-1 of its content).
  seeds=$(for f in "corpus/$target"/seed-*; do [ -e "$f" ] && sha1sum "$f"; done | cut -d' ' -f1)
  find "corpus/$target" -maxdepth 1 -type f ! -name 'seed-*' -delete
  for f in "$work"/*; do
    [ -f "$f" ] || continue
    sum=$(sha1sum "$f" | cut -d' ' -f1)
    if ! grep -qx "$sum" <<<"$seeds"; then
      cp "$f" "corpus/$target/$sum"
    fi
  done
  echo "==> $target: fuzz/corpus/$target/ holds $(ls "corpus/$target" | wc -l) inputs"
done
