#!/usr/bin/env bash
# Fuzz the C ring's record parser, header decoder and writer (fuzz/fuzz_ring.c) under
# AddressSanitizer and UBSan for a bounded number of inputs: ./scripts/fuzz.sh [RUNS] [SEED]
# With clang (apt install clang) it is libFuzzer, coverage-guided; with gcc only, the
# target's own driver feeds it random and mutated inputs. CI runs it with gcc.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-200000}"
seed="${2:-$RANDOM}"
out=fuzz/build
mkdir -p "$out"
flags=(-std=c11 -O1 -g -fno-omit-frame-pointer -Wall -Wextra -Werror -Icsrc
       -fsanitize=address,undefined -fno-sanitize-recover=undefined)
if command -v clang >/dev/null && echo 'int LLVMFuzzerTestOneInput(const char*d,long s){return 0;}' |
    clang -x c -fsanitize=fuzzer - -o "$out/probe" 2>/dev/null; then
  clang "${flags[@]}" -fsanitize=fuzzer fuzz/fuzz_ring.c csrc/ring.c -o "$out/fuzz_ring"
  echo "== libFuzzer, $runs runs, seed $seed"
  "$out/fuzz_ring" -runs="$runs" -seed="$seed" -max_len=9016
else
  cc "${flags[@]}" -DIK_STANDALONE_DRIVER fuzz/fuzz_ring.c csrc/ring.c -o "$out/fuzz_ring"
  echo "== gcc driver (no libFuzzer here), $runs inputs, seed $seed"
  "$out/fuzz_ring" "$runs" "$seed"
fi
