#!/usr/bin/env bash
# The wasm section of `make bench`: keel for wasm32 against emscripten's
# emmalloc and dlmalloc, all under node.
#  - code size: bench/wasm/size.c (calls malloc, calloc, realloc,
#    aligned_alloc, posix_memalign, malloc_usable_size, free) linked with
#    each allocator, minus the same program with trivial stand-ins, at -O2
#    and -Oz; wasi-libc's dlmalloc vs keel too;
#  - time and peak memory: bench/wasm/bench.c with 4 Ki, 64 Ki and 1 Mi live
#    blocks; allocators alternate within each round. Time is the program's
#    own estimate with the machine's stalls left out (its fastest twentieth
#    of the loop, times 20); the table gives the median over rounds, and the
#    median of each round's ratio to keel (the runs of a round are seconds
#    apart, so a slow phase of a shared machine hits both sides of a ratio).
#  - with IR=1 also, under cachegrind (steadier than time on a busy machine,
#    though node's JIT still moves them between runs): x86 instructions
#    node executes and level-1 data-cache misses per operation,
#    (count with 1M operations - count with 0) / 1M.
# Writes bench/wasm/RESULTS.md. Env: QUICK=1 (fewer rounds and ops),
# ROUNDS, OPS, IR=1, KEEL_WASM_OUT (the archives' folder, default build/wasm).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
export NODE_PATH=${NODE_PATH:-/usr/share/nodejs}
w=$(mktemp -d); trap 'rm -rf "$w"' EXIT
rounds=${ROUNDS:-$([ "${QUICK:-0}" = 1 ] && echo 3 || echo 11)}
ops=${OPS:-$([ "${QUICK:-0}" = 1 ] && echo 500000 || echo 2000000)}
# Its toolchains, as `make bench` installs the native peers (tools/deps.sh).
bash "$root/tools/deps.sh" test-wasm
bash "$root/tools/wasm.sh" >/dev/null
lib=${KEEL_WASM_OUT:-$root/build/wasm}   # where tools/wasm.sh writes
out=$root/bench/wasm/RESULTS.md

size_of() { stat -c%s "$1"; }
declare -A sz
for o in -O2 -Oz; do
  s=$root/bench/wasm/size.c
  emcc "$o" "$s" -DKL_BASELINE -sMALLOC=none -o "$w/b.js"
  emcc "$o" "$s" -sMALLOC=emmalloc -o "$w/e.js"
  emcc "$o" "$s" -sMALLOC=dlmalloc -o "$w/d.js"
  emcc "$o" "$s" -sMALLOC=none "$lib/libkeel-emscripten.a" -o "$w/k.js"
  b=$(size_of "$w/b.wasm")
  sz[em$o]=$(( $(size_of "$w/e.wasm") - b )); sz[dl$o]=$(( $(size_of "$w/d.wasm") - b )); sz[kl$o]=$(( $(size_of "$w/k.wasm") - b ))
  wc=(clang --target=wasm32-wasi --sysroot=/usr "$o" -Wl,--strip-all)
  "${wc[@]}" "$s" -DKL_BASELINE -o "$w/wb.wasm"; "${wc[@]}" "$s" -o "$w/wd.wasm"; "${wc[@]}" "$s" "$lib/libkeel-wasi.a" -o "$w/wk.wasm"
  b=$(size_of "$w/wb.wasm")
  sz[wdl$o]=$(( $(size_of "$w/wd.wasm") - b )); sz[wkl$o]=$(( $(size_of "$w/wk.wasm") - b ))
done

flags=(-O2 -sALLOW_MEMORY_GROWTH -sMAXIMUM_MEMORY=2GB)
emcc "${flags[@]}" "$root/bench/wasm/bench.c" -sMALLOC=none "$lib/libkeel-emscripten.a" -o "$w/keel.js"
emcc "${flags[@]}" "$root/bench/wasm/bench.c" -sMALLOC=dlmalloc -o "$w/dlmalloc.js"
emcc "${flags[@]}" "$root/bench/wasm/bench.c" -sMALLOC=emmalloc -o "$w/emmalloc.js"
allocs=(keel dlmalloc emmalloc)
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
for live in 4096 65536 1048576; do
  for r in $(seq "$rounds"); do
    n=${#allocs[@]}
    for i in $(seq 0 $((n - 1))); do          # rotate the order each round
      a=${allocs[$(( (i + r) % n ))]}
      read -r _ ms _ cpu _ peak _ _ _ best < <(node --no-experimental-fetch "$w/$a.js" "$live" "$ops")
      echo "$best" >>"$w/best.$a.$live"; echo "$cpu" >>"$w/cpu.$a.$live"; echo "$peak" >>"$w/peak.$a.$live"
      eval "best_$a=$best"
      echo "live=$live round=$r $a: best-part estimate $best ms, cpu $cpu ms, wall $ms ms, peak $peak" >&2
    done
    for a in "${allocs[@]}"; do eval "echo \"\$best_$a $best_keel\"" | awk '{print $1 / $2}' >>"$w/ratio.$a.$live"; done
  done
done

declare -A ir d1
if [ "${IR:-0}" = 1 ]; then
  # Prints "instructions D1-misses" of one run (cachegrind's simulated
  # caches: the host's sizes, so misses compare allocators, not machines).
  cg() { valgrind --tool=cachegrind --cache-sim=yes --cachegrind-out-file=/dev/null \
              node --no-experimental-fetch --single-threaded "$w/$1.js" "$2" "$3" 2>&1 |
           awk '/I +refs/ {gsub(",", "", $4); i=$4} /D1 +misses/ {gsub(",", "", $4); d=$4} END {print i, d}'; }
  for live in 4096 65536 1048576; do
    for a in "${allocs[@]}"; do
      # A run that valgrind cut short (once, on the 1M-block set: 2M
      # instructions fewer than the empty run) is run again, up to 3 times;
      # a pair that never makes sense is reported as n/a.
      for try in 1 2 3; do
        read -r zi zd < <(cg "$a" "$live" 0); read -r ni nd < <(cg "$a" "$live" 1000000)
        [ -n "$zi" ] && [ -n "$ni" ] && [ "$ni" -gt "$zi" ] && break
        zi=""; ni=""
      done
      if [ -z "$ni" ]; then ir[$a.$live]="n/a"; d1[$a.$live]="n/a"; else
        ir[$a.$live]=$(( (ni - zi) / 1000000 )); d1[$a.$live]=$(awk -v n="$nd" -v z="$zd" 'BEGIN {printf "%.2f", (n - z) / 1e6}')
      fi
      echo "live=$live $a: ${ir[$a.$live]} instructions, ${d1[$a.$live]} D1 misses per operation" >&2
    done
  done
fi

{
  echo "# keel for wasm32: size, time, memory"
  echo
  echo "Generated by \`bench/wasm/run.sh\` on $(date -u +%Y-%m-%d) (emcc $(emcc --version | head -1 | awk '{print $NF == "()" ? $(NF-1) : $NF}'), node $(node --version), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end). Time and memory: medians of $rounds rounds, allocators alternating, $ops replace operations per run."
  echo
  echo "## Code size (bytes the allocator adds to a program calling the 7 functions)"
  echo
  echo "| toolchain | opt | keel | emmalloc | dlmalloc |"
  echo "|---|---|---:|---:|---:|"
  for o in -O2 -Oz; do echo "| emscripten | $o | ${sz[kl$o]} | ${sz[em$o]} | ${sz[dl$o]} |"; done
  for o in -O2 -Oz; do echo "| wasi-libc | $o | ${sz[wkl$o]} | - | ${sz[wdl$o]} (wasi-libc's) |"; done
  echo
  echo "## Time and peak memory"
  echo
  echo "ms of the replace loop, the program's own estimate without the machine's stalls (its fastest twentieth of the loop × 20), median over the rounds; in brackets the median over the rounds of each round's ratio to keel's (above 1.00× means keel was faster); then node's CPU ms (process.cpuUsage, median), which a busy machine inflates. Last, the final linear memory in MiB. Lower is better."
  echo
  echo "| live blocks | keel ms | dlmalloc ms | emmalloc ms | keel cpu | dlmalloc cpu | emmalloc cpu | keel MiB | dlmalloc MiB | emmalloc MiB |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for live in 4096 65536 1048576; do
    row="| $live"
    for a in "${allocs[@]}"; do
      row+=" | $(median <"$w/best.$a.$live")"
      [ "$a" = keel ] || row+=" ($(median <"$w/ratio.$a.$live" | awk '{printf "%.2f", $1}')×)"
    done
    for a in "${allocs[@]}"; do row+=" | $(median <"$w/cpu.$a.$live")"; done
    for a in "${allocs[@]}"; do row+=" | $(median <"$w/peak.$a.$live" | awk '{printf "%.2f", $1/1048576}')"; done
    echo "$row |"
  done
  if [ "${IR:-0}" = 1 ]; then
    echo
    echo "## Instructions and cache misses per operation (cachegrind, IR=1)"
    echo
    echo "Per replace operation (free + malloc + the loop's own work), from (count with 1M operations - count with none) / 1M: x86 instructions node executes, and level-1 data-cache misses in cachegrind's simulation of this machine's caches. Steadier than time on a shared machine, but not fixed: node's JIT makes them vary from run to run (keel at 1,048,576 live blocks: 376 and 211 instructions in two runs on 2026-12-01), so compare allocators within one run."
    echo
    echo "| live blocks | keel instr | dlmalloc instr | emmalloc instr | keel D1 misses | dlmalloc D1 misses | emmalloc D1 misses |"
    echo "|---:|---:|---:|---:|---:|---:|---:|"
    for live in 4096 65536 1048576; do echo "| $live | ${ir[keel.$live]} | ${ir[dlmalloc.$live]} | ${ir[emmalloc.$live]} | ${d1[keel.$live]} | ${d1[dlmalloc.$live]} | ${d1[emmalloc.$live]} |"; done
  fi
  echo
  echo "Workload (bench/wasm/bench.c): keep N blocks live, replace a random one per operation; sizes 94% 1-128 B, 5.9% up to 4 KiB, 0.1% up to 64 KiB. All built with \`emcc -O2 -sALLOW_MEMORY_GROWTH\`; keel with \`-sMALLOC=none build/wasm/libkeel-emscripten.a\`."
} >"$out"
cat "$out"
