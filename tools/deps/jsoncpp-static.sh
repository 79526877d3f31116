#!/usr/bin/env bash
# jsoncpp-static.sh OUT_DIR: OUT_DIR/lib/libjsoncpp.a and OUT_DIR/include/json/
# built from Debian's own jsoncpp source package (`libjsoncpp`, the source of
# libjsoncpp-dev), for the fully static linking mode of tests/suites/linking.sh.
#
# Why: Debian ships jsoncpp only as a shared library, and a `-static` binary
# cannot link that; the issue asks for the jsoncpp scenario in every mode.
# The source comes through apt itself (`apt-get source --download-only`,
# checked against the signed Debian index), from the same archive as the
# system's packages, with a private apt state folder: the machine's apt
# configuration is not changed and no root is needed. Nothing is vendored.
# The result is cached in OUT_DIR; a second call does nothing.
set -eu
out=$1
[ -s "$out/lib/libjsoncpp.a" ] && [ -f "$out/include/json/json.h" ] && exit 0
mkdir -p "$out"
out=$(cd "$out" && pwd)
apt_dir=$out/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/src"
chmod 755 "$apt_dir" "$apt_dir/src"   # apt's _apt user may write the download there

# The archive and suite the system's own packages come from (deb822 or
# one-line sources), so the source matches the installed libjsoncpp-dev.
uri=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | head -n 1 | awk '{print $2}')
suite=$(grep -hsE '^Suites:' /etc/apt/sources.list.d/*.sources | head -n 1 | awk '{print $2}')
if [ -z "$uri" ]; then
  read -r _ uri suite _ < <(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | grep -v '\[' | head -n 1) || true
fi
uri=${uri:-http://deb.debian.org/debian}
suite=${suite:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}
key=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb-src [signed-by=$key] $uri $suite main" > "$apt_dir/sources.list"
A=(-o Dir::Etc::SourceList="$apt_dir/sources.list" -o Dir::Etc::SourceParts=/nonexistent
   -o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache" -o Debug::NoLocking=1)

fetched=false
for try in 1 2 3; do
  if timeout 300 apt-get -qq "${A[@]}" update >"$apt_dir/update.log" 2>&1 &&
     (cd "$apt_dir/src" && timeout 300 apt-get -qq "${A[@]}" source --download-only libjsoncpp >"$apt_dir/source.log" 2>&1); then
    fetched=true; break
  fi
  sleep $((try * 5))
done
if ! $fetched; then
  echo "jsoncpp-static: could not fetch Debian's libjsoncpp source package with apt-get source:" >&2
  tail -n 5 "$apt_dir/update.log" "$apt_dir/source.log" >&2 2>/dev/null || true
  exit 1
fi

tarball=$(ls "$apt_dir"/src/libjsoncpp_*.orig.tar.* | head -n 1)
rm -rf "$apt_dir/tree" && mkdir -p "$apt_dir/tree"
tar xf "$tarball" -C "$apt_dir/tree" --strip-components=1
cd "$apt_dir/tree"
objs=()
for s in src/lib_json/json_reader.cpp src/lib_json/json_value.cpp src/lib_json/json_writer.cpp; do
  o=$apt_dir/$(basename "$s" .cpp).o
  g++ -std=c++17 -O2 -Iinclude -Isrc/lib_json -c "$s" -o "$o"
  objs+=("$o")
done
mkdir -p "$out/lib" "$out/include"
rm -f "$out/lib/libjsoncpp.a"
ar rcs "$out/lib/libjsoncpp.a" "${objs[@]}"
rm -rf "$out/include/json" && cp -r include/json "$out/include/json"
echo "jsoncpp-static: built $out/lib/libjsoncpp.a from $(basename "$tarball")"
