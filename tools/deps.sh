#!/usr/bin/env bash
# Installs the Debian packages a job needs: `tools/deps.sh test` reads
# tools/deps/test*.txt (one package a line, # comments; one file per area). As root, missing
# packages are installed with apt-get; otherwise the exact command is printed
# and the script fails.
set -u
job=${1:-test}
lists=("$(dirname "$0")"/deps/"$job"*.txt)
[ -f "${lists[0]}" ] || { echo "deps: no list for $job" >&2; exit 1; }
missing=()
while read -r pkg _; do
  case "$pkg" in ''|'#'*) continue;; esac
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done < <(cat "${lists[@]}")
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >/tmp/keel-deps.log 2>&1 \
    || { echo "deps: apt-get failed, see /tmp/keel-deps.log"; tail -20 /tmp/keel-deps.log; exit 1; }
else
  echo "deps: missing Debian packages; run as root:"
  echo "  sudo apt-get install ${missing[*]}"
  exit 1
fi
