#!/usr/bin/env bash
# Makes (or reuses) the Debian 12 root the system test boots, and prints its path.
#   debootstrap --variant=minbase --include=<packages.txt> bookworm
# The root is cached under .cache/system-test/root-<key>, key = a hash of packages.txt, this
# script and the suite, so a local rerun takes seconds; with CI=true it is always made fresh.
# Debian's archive is the only network this needs (DEBIAN_MIRROR overrides debootstrap's default).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
suite=bookworm
cache=$repo/.cache/system-test
mkdir -p "$cache"

packages=$(grep -v '^[[:space:]]*\(#\|$\)' "$here/packages.txt" | tr -s '[:space:]' ',' | sed 's/^,//; s/,$//')
key=$( (echo "$suite"; cat "$here/packages.txt" "$here/make-root.sh") | sha256sum | cut -c1-12)
root=$cache/root-$key

exec 9>"$cache/.lock"
flock 9 # one builder at a time; a second run waits and then reuses the result

done=$root.complete # outside the root, so the container never sees it
if [ "${CI:-}" = true ] && [ -e "$done" ]; then
  echo "make-root: CI=true: making the root afresh" >&2
  rm -rf "$root" "$done"
fi
if [ -f "$done" ] && [ -d "$root" ]; then
  echo "make-root: cached $root" >&2
  echo "$root"
  exit 0
fi

tmp=$root.tmp
rm -rf "$tmp" "$root"
start=$(date +%s)
echo "make-root: debootstrap $suite ($packages) into $tmp" >&2
# shellcheck disable=SC2086
debootstrap --variant=minbase --include="$packages" "$suite" "$tmp" ${DEBIAN_MIRROR:-} >"$cache/debootstrap.log" 2>&1 || {
  tail -n 30 "$cache/debootstrap.log" >&2
  echo "make-root: debootstrap failed; full log in $cache/debootstrap.log" >&2
  exit 1
}

# debootstrap copies the build machine's hostname and resolver; give the root its own, as a VM
# would have from DHCP. 192.0.2.0/24 is TEST-NET-1: the container has no route there anyway.
echo debian-systest >"$tmp/etc/hostname"
printf '# as a DHCP client would have written it\nnameserver 192.0.2.53\n' >"$tmp/etc/resolv.conf"
# Timers that would run apt, fstrim or backups in the middle of a test and only add noise.
for unit in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer; do
  ln -sf /dev/null "$tmp/etc/systemd/system/$unit"
done
# Smaller and no stale indexes: the container cannot reach the archive anyway.
chroot "$tmp" apt-get clean
rm -rf "$tmp/var/lib/apt/lists/"*

mv "$tmp" "$root"
touch "$done"
echo "make-root: built $root in $(($(date +%s) - start)) s" >&2
# Older roots (other package lists) are not reused; keep the cache to the current one.
find "$cache" -maxdepth 1 -name 'root-*' ! -name "root-$key" ! -name "root-$key.complete" -exec rm -rf {} +
echo "$root"
