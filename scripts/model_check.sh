#!/usr/bin/env bash
# Model-check the shm:// ring protocol (model/shm_ring.pml) with spin: every interleaving
# of two producers and two consumers, one of them SIGKILLed at any step. Exhaustive
# search (safety: assertions and invalid end states). Needs spin (Debian package "spin")
# and a C compiler. ./scripts/model_check.sh [extra pan flags]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v spin > /dev/null; then
  echo "spin is not installed (apt-get install spin): skipping the model check"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp model/shm_ring.pml "$work/"
cd "$work"
spin -a shm_ring.pml > /dev/null
gcc -O2 -w -o pan pan.c -DSAFETY -DCOLLAPSE -DVECTORSZ=2048
./pan -m400000 -w26 "$@" > pan.out 2>&1 || true
grep -E "errors:|states, stored|elapsed" pan.out
if ! grep -q "errors: 0" pan.out || grep -q "Search not completed" pan.out; then
  cat pan.out
  if [ -f shm_ring.pml.trail ]; then spin -t -p -g shm_ring.pml | tail -60; fi
  echo "model check FAILED"
  exit 1
fi
echo "model check passed: no torn, duplicated or lost message, no deadlock"
