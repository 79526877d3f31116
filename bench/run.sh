#!/usr/bin/env bash
# Alias of bench/bench.sh (the name `make bench` calls), kept for scripts
# that say bench/run.sh.
exec bash "$(dirname "$0")/bench.sh" "$@"
