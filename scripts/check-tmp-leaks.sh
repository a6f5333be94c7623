#!/usr/bin/env bash
# Runs test files and fails when they leave anything behind: an entry in the temp directory, a
# network namespace, a running process.
#
#   scripts/check-tmp-leaks.sh [tap files...]   (default: test/unit/*.test.ts test/integration/*.test.ts)
#
# As root the run happens in private mount and PID namespaces with an empty tmpfs on /tmp and on
# /run/netns (where `ip netns` keeps its names): what is left there, or still running, is the
# tests' alone (other work on the machine cannot change the count), and ending the namespaces
# ends whatever leaked. As another user, TMPDIR is a fresh
# directory (a child given a bare environment would write to /tmp unseen) and processes are not
# checked. The caches that tools keep in the temp directory and reuse on every run (tsx's
# `tsx-<uid>`, `v8-compile-cache-<uid>`) are not leaks; tap's `.tap/` is in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$#" -eq 0 ]; then set -- test/unit/*.test.ts test/integration/*.test.ts; fi

if [ "$(id -u)" = 0 ] && [ -z "${CHECK_TMP_LEAKS_INSIDE:-}" ]; then
  exec env CHECK_TMP_LEAKS_INSIDE=1 unshare --mount --propagation private --pid --fork \
    --mount-proc "$0" "$@"
fi

if [ -n "${CHECK_TMP_LEAKS_INSIDE:-}" ]; then
  mount -t tmpfs -o mode=1777 check-tmp-leaks /tmp
  mkdir -p /run/netns
  mount -t tmpfs -o mode=0755 check-tmp-leaks /run/netns
  unset TMPDIR
  tmp=/tmp
else
  tmp=$(mktemp -d)
  export TMPDIR=$tmp
fi

caches="^(tsx|v8-compile-cache)-[0-9]+$"
entries() { ls -A "$tmp" | grep -Ev "$caches" || true; }
namespaces() { ip netns list 2>/dev/null | awk '{print $1}' | sort || true; }

before_tmp=$(entries)
before_ns=$(namespaces)
status=0
npx tap "$@" || status=$?

leaks=0
left_tmp=$(comm -13 <(echo "$before_tmp") <(entries))
if [ -n "$left_tmp" ]; then
  leaks=1
  echo "left in the temp directory ($tmp):"
  while read -r e; do
    echo "  $e"
    find "$tmp/$e" -maxdepth 2 | sed -n '2,6s/^/    /p'
  done <<<"$left_tmp"
fi
left_ns=$(comm -13 <(echo "$before_ns") <(namespaces))
if [ -n "$left_ns" ]; then
  leaks=1
  echo "network namespaces left:"
  sed 's/^/  /' <<<"$left_ns"
fi
if [ -n "${CHECK_TMP_LEAKS_INSIDE:-}" ]; then
  # Everything in this PID namespace but this script (pid 1), ps itself and zombies.
  ps -e -o pid=,stat=,args= >/tmp/.ps
  running=$(awk '$1 != 1 && $2 !~ /^Z/ && $3 != "ps"' /tmp/.ps)
  if [ -n "$running" ]; then
    leaks=1
    echo "processes left running:"
    sed 's/^/  /' <<<"$running"
  fi
else
  rm -rf "$tmp"
fi

if [ "$leaks" = 0 ]; then echo "check-tmp-leaks: nothing left behind"; fi
if [ "$status" != 0 ]; then echo "check-tmp-leaks: the tests failed (exit $status)"; fi
[ "$status" = 0 ] && [ "$leaks" = 0 ]
