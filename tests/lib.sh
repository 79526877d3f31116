# Helpers for test suites (sourced). Each check is one counted test.
#   t NAME CMD...     passes when CMD exits 0 (its output is shown on failure)
#   tc NAME CMD...    runs a harness program and adds its "N passed, N failed"
#   known NAME CMD... an open problem: runs and shows the result, counts
#                     neither way (each one is listed in the closing notes)
#   skip_unless_variant release   leave early (0/0) in the other build
#   finish            prints "N passed, N failed" and exits non-zero on failure
KL_PASS=0; KL_FAIL=0
KL_TMP=$(mktemp -d); trap 'rm -rf "$KL_TMP"' EXIT
t() {
  local name=$1; shift
  if "$@" >"$KL_TMP/out" 2>&1; then KL_PASS=$((KL_PASS + 1)); echo "ok   $name"
  else KL_FAIL=$((KL_FAIL + 1)); echo "FAIL $name"; tail -n 25 "$KL_TMP/out" | sed 's/^/     /'; fi
}
tc() {
  local name=$1; shift
  "$@" >"$KL_TMP/out" 2>&1; local rc=$?
  local line; line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$KL_TMP/out" | tail -n 1)
  local p=${line%% passed*}; local f=${line#*passed, }; f=${f%% failed*}
  [ -n "$line" ] || { p=0; f=1; }
  [ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
  KL_PASS=$((KL_PASS + p)); KL_FAIL=$((KL_FAIL + f))
  if [ "$f" -eq 0 ]; then echo "ok   $name ($p)"
  else echo "FAIL $name (rc=$rc, $p passed, $f failed)"; grep -v '^ok' "$KL_TMP/out" | tail -n 25 | sed 's/^/     /'; fi
}
known() {
  local name=$1; shift
  if "$@" >"$KL_TMP/out" 2>&1; then echo "KNOWN-OK   $name"
  else echo "KNOWN-FAIL $name (open problem, not counted)"; tail -n 3 "$KL_TMP/out" | sed 's/^/     /'; fi
}
skip_unless_variant() { [ "${KEEL_VARIANT:-release}" = "$1" ] || { echo "0 passed, 0 failed"; exit 0; }; }
finish() { echo "$KL_PASS passed, $KL_FAIL failed"; [ $KL_FAIL -eq 0 ]; }
