#!/usr/bin/env bash
# Build the compiled core (mmcore_ext/*.pyx) with AddressSanitizer + UndefinedBehaviorSanitizer and run the tests of
# the book, decoder, quoting, risk, orders and the fuzz harness under it. Exits non-zero on any sanitizer report or
# test failure.
#
#   scripts/sanitize.sh [SOURCE_DIR]        # default: this repository's working tree
#
# - The build happens in a temporary copy of the sources (removed at the end unless KEEP=1), so the normal build
#   (the .so files of `pip install -e .`) is untouched. It uses the project's venv (.venv, set up as in the README)
#   for Python, Cython and the test dependencies.
# - Flags: -fsanitize=address,undefined -fno-sanitize-recover=undefined (UB aborts instead of printing and going on)
#   -fno-omit-frame-pointer -g, and -fno-wrapv: CPython's own CFLAGS carry -fwrapv, which makes signed overflow
#   defined (wrapping) and so invisible to UBSan; -fno-wrapv after it restores the check.
# - CPython itself is not instrumented, so gcc's libasan is preloaded (LD_PRELOAD=$(gcc -print-file-name=libasan.so));
#   PYTHONMALLOC=malloc sends PyMem_* (the book's level arrays and windows) through malloc, where ASan sees every
#   byte (pymalloc's arenas would hide overflows of small blocks). ASAN_OPTIONS: detect_leaks=0 (CPython keeps
#   objects alive at exit by design), abort_on_error=1. Child processes (the CLI tests run `python -m mmcore` in a
#   child) inherit all of this, and every report of any process is also written to a log file that this script
#   checks at the end.
# - MMCORE_FUZZ_SCALE (see tests/test_fuzz_core.py) is passed through, for a longer fuzz run under the sanitizers;
#   SANITIZE_TESTS="tests/test_x.py ..." replaces the list of test files (pytest arguments) run below.
#
# Measured on the project's 2-core machine, shared with other jobs: 6.2 min (build 104 s, tests 268 s, 1063 tests);
# 9-10 min while the machine was busier.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
SRC="$(cd "${1:-$REPO}" && pwd)"
PY="${PYTHON:-$REPO/.venv/bin/python}"
[ -x "$PY" ] || { echo "sanitize.sh: no Python at $PY (set up .venv as in the README, or set PYTHON)" >&2; exit 2; }
LIBASAN="$(gcc -print-file-name=libasan.so)"
LIBSTDCXX="$(gcc -print-file-name=libstdc++.so)"
[ -f "$LIBASAN" ] || { echo "sanitize.sh: gcc's libasan.so not found ($LIBASAN)" >&2; exit 2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/mmcore-sanitize.XXXXXX")"
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT
echo "sanitize.sh: sources $SRC -> $WORK"
(cd "$SRC" && tar -cf - --exclude='*.so' --exclude='*.c' --exclude='*.html' --exclude=build \
    setup.py pyproject.toml mmcore mmcore_ext tests config data vendor) | tar -xf - -C "$WORK"

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -fno-wrapv -g"
t0=$(date +%s)
(cd "$WORK" && CFLAGS="$SAN" LDFLAGS="-fsanitize=address,undefined" "$PY" setup.py build_ext --inplace -j 2 -q \
    > "$WORK/build.log" 2>&1) || { tail -50 "$WORK/build.log" >&2; echo "sanitize.sh: build failed" >&2; exit 2; }
t1=$(date +%s)
echo "sanitize.sh: built in $((t1 - t0)) s"

mkdir -p "$WORK/reports"
# libstdc++ too: ASan intercepts __cxa_throw only if libstdc++ is loaded when it starts (C++ extensions such as
# matplotlib's ft2font, used by the backtest's plot in the CLI tests, throw exceptions on import).
export LD_PRELOAD="$LIBASAN $LIBSTDCXX${LD_PRELOAD:+ $LD_PRELOAD}"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:log_path=$WORK/reports/asan:log_exe_name=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:abort_on_error=1:log_path=$WORK/reports/ubsan:log_exe_name=1"
export PYTHONMALLOC=malloc
export PYTHONDONTWRITEBYTECODE=1
cd "$WORK"
# The modules under test must be the instrumented ones from this copy.
"$PY" - <<'EOF'
import os, mmcore_ext.book as b, mmcore_ext.binance_codec as c, mmcore_ext.mexc_codec as m
here = os.getcwd()
assert all(x.__file__.startswith(here) for x in (b, c, m)), (b.__file__, c.__file__, m.__file__)
print("sanitize.sh: testing", os.path.dirname(b.__file__))
EOF
status=0
TESTS="${SANITIZE_TESTS:-tests/test_book.py tests/test_book_replay.py tests/test_replay_reader.py tests/test_quoting.py
    tests/test_risk.py tests/test_orders.py tests/test_fuzz_core.py tests/test_hostile_numbers.py
    tests/test_binance_router.py tests/test_book_ticker_top.py tests/test_strategy.py tests/test_estimators.py
    tests/test_ladder_orders.py tests/test_byte_decoder.py tests/test_event_cache.py tests/test_mexc_codec.py
    tests/test_mexc_book.py}"
# shellcheck disable=SC2086
"$PY" -m pytest -q -p no:cacheprovider -o addopts="" $TESTS 2>&1 | tee "$WORK/pytest.log" || status=$?
t2=$(date +%s)
# A report of a child process that a test captured shows in the test's failure message.
if grep -q -E "runtime error:|ERROR: AddressSanitizer|AddressSanitizer: CHECK failed" "$WORK/pytest.log"; then
    echo "sanitize.sh: sanitizer report in the test output (see above)" >&2
    status=1
fi
if compgen -G "$WORK/reports/*" > /dev/null; then
    echo "sanitize.sh: sanitizer reports:" >&2
    for f in "$WORK"/reports/*; do echo "== $f" >&2; head -60 "$f" >&2; done
    status=1
fi
echo "sanitize.sh: tests in $((t2 - t1)) s; total $((t2 - t0)) s; exit $status"
exit $status
