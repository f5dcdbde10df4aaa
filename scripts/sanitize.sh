#!/usr/bin/env bash
# Run the shm, ring, framing, stream and matching conformance tests against an
# AddressSanitizer + UBSan build of the C core: ./scripts/sanitize.sh [extra pytest args]
# The package and tests are copied to a scratch directory with the sanitized
# extension beside them, so the installed (or editable) build is left alone. Needs
# gcc's libasan (LD_PRELOADed: Python itself is not built with ASan). Leak reports are
# off: CPython keeps objects alive at exit on purpose, and they would drown ours.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d)
# A straggling test child may still be writing there when the tests end: the clean-up
# must not turn a passing run into a failing one.
trap 'rm -rf "$scratch" 2>/dev/null || { sleep 1; rm -rf "$scratch" || true; }' EXIT
export PYTHONDONTWRITEBYTECODE=1
cp -r ipckit tests pyproject.toml "$scratch/"
# setup.py is run directly here, so this venv's setuptools must read pyproject.toml's SPDX license.
python -m pip install --quiet "setuptools>=77"
rm -f "$scratch"/ipckit/_core*.so
IPCKIT_SANITIZE=1 IPCKIT_STRICT_BUILD=1 IPCKIT_REQUIRE_NATIVE=1 \
  python setup.py -q build_ext --build-lib "$scratch/build" --build-temp "$scratch/tmp" 2>&1 |
  grep -v -e BetaConfiguration -e 'warnings.warn' || true
cp "$scratch"/build/ipckit/_core*.so "$scratch/ipckit/"
libasan=$(gcc -print-file-name=libasan.so)
cd "$scratch"
LD_PRELOAD="$libasan" ASAN_OPTIONS=detect_leaks=0 python -c \
  'import ipckit, ipckit._core as c; assert ipckit.native; print("   sanitized core:", c.__file__)'
echo "== AddressSanitizer + UBSan build of ipckit._core; shm, ring, framing, stream and conformance tests"
LD_PRELOAD="$libasan" \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
IPCKIT_REQUIRE_NATIVE=1 \
  python -m pytest -q -p no:cacheprovider -o addopts="" -x \
    tests/shm tests/ring tests/framing tests/streams tests/conformance tests/aio/test_aio_contract.py \
    -k "shm or ring or fram or pipe or unix or stream or native" "$@"
