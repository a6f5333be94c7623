#!/usr/bin/env bash
# The Node.js single executable application (SEA): a node binary, stripped, with a CommonJS bundle
# injected by postject. One function, used by scripts/build-deb.sh (the packaged executable) and by
# bench/cert-start.ts (the same executable, with and without V8's code cache, without a .deb).
#
# Sourced:    build_sea NODE_BIN MAIN OUT CACHE_DIR [USE_CODE_CACHE=true] [USE_SNAPSHOT=false]
# Standalone: scripts/sea.sh OUT [MAIN=dist/istio-node-agent.cjs] [USE_CODE_CACHE=true] [USE_SNAPSHOT=false]
#             (NODE_BINARY, default the running node; the stripped runtime is cached in build/cache)
#
# Debug symbols are most of node's size; they are stripped before the injection (stripping after
# would drop the blob's note). The stripped runtime depends only on the node binary, so it is kept
# in CACHE_DIR keyed by the binary's hash. The blob (and with it the code cache or snapshot) is made
# by NODE_BIN itself: V8 only accepts a code cache made by the same V8.
# Needs: binutils (strip), postject (devDependency).

build_sea() {
  local node_bin=$1 main=$2 out=$3 cache=$4 code_cache=${5:-true} snapshot=${6:-false}
  local here
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  case "$code_cache$snapshot" in
    truefalse | falsefalse | falsetrue | truetrue) ;;
    *) echo "build_sea: USE_CODE_CACHE and USE_SNAPSHOT are true or false" >&2; return 1 ;;
  esac
  mkdir -p "$(dirname "$out")" "$cache"
  local config=$out.sea-config.json blob=$out.sea-blob
  cat >"$config" <<JSON
{ "main": "$main", "output": "$blob", "disableExperimentalSEAWarning": true,
  "useCodeCache": $code_cache, "useSnapshot": $snapshot }
JSON
  local msg
  if ! msg=$("$node_bin" --experimental-sea-config "$config" 2>&1); then
    echo "build_sea: node --experimental-sea-config failed: $msg" >&2
    rm -f "$config" "$blob"
    return 1
  fi
  local node_hash
  node_hash=$(sha256sum "$node_bin" | cut -c1-16)
  # Each step checks itself: a caller's `set -e` does not reach into a function called with `||`.
  if [ ! -f "$cache/node-$node_hash.stripped" ]; then
    cp "$node_bin" "$cache/node-$node_hash.tmp" &&
      chmod u+w "$cache/node-$node_hash.tmp" &&
      strip --strip-all --remove-section=.comment "$cache/node-$node_hash.tmp" &&
      mv "$cache/node-$node_hash.tmp" "$cache/node-$node_hash.stripped" ||
      { echo "build_sea: cannot strip a copy of $node_bin" >&2; return 1; }
  fi
  rm -f "$out"
  cp "$cache/node-$node_hash.stripped" "$out" || return 1
  # postject warns once per ELF note it cannot name (node has hundreds); those lines are noise.
  local said
  if ! said=$(cd "$here" && npx --no-install postject "$out" NODE_SEA_BLOB "$blob" \
    --sentinel-fuse NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2 2>&1 >/dev/null); then
    printf '%s\n' "$said" >&2
    echo "build_sea: postject failed" >&2
    rm -f "$config" "$blob" "$out"
    return 1
  fi
  printf '%s\n' "$said" | { grep -v -e "Can't find string offset for section name" -e '^$' || true; } >&2
  rm -f "$config" "$blob"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  [ $# -ge 1 ] || { echo "usage: $0 OUT [MAIN] [USE_CODE_CACHE] [USE_SNAPSHOT]" >&2; exit 2; }
  repo=$(cd "$(dirname "$0")/.." && pwd)
  node_bin=$(readlink -f "${NODE_BINARY:-$(node -p process.execPath)}")
  build_sea "$node_bin" "$(readlink -f "${2:-$repo/dist/istio-node-agent.cjs}")" "$(readlink -m "$1")" \
    "$repo/build/cache" "${3:-true}" "${4:-false}"
fi
