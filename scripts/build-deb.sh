#!/usr/bin/env bash
# Builds build/istio-node-agent_<version>_<arch>.deb (`npm run build:deb`):
#   1. the bundle build/bundle/istio-node-agent.cjs (scripts/build.mjs; not dist/, which test
#      files run from while the system test builds this package beside them);
#   2. a Node.js single executable application (SEA): this machine's node binary, stripped, with
#      the bundle injected by postject (Debian 12's own nodejs is 18, so the package carries 20);
#   3. a staged tree build/deb/root with the unit, conffile templates generated from
#      docs/configuration.md, the man page, docs/{configuration,operations,errors}.md (gzipped),
#      copyright, changelog and the license texts;
#   4. dpkg-deb --root-owner-group --build.
# Needs: node 20 (the one that runs this), dpkg-dev (dpkg-shlibdeps), binutils (strip), gzip.
# Environment: NODE_BINARY (default: the running node); DEB_COMPRESSION (xz, the default and the
# release setting; gzip builds in seconds instead of minutes, for the system test); LINTIAN=1 to
# run lintian afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

log() { printf 'build-deb [%3ss]: %s\n' "$SECONDS" "$*" >&2; }
die() { log "error: $*"; exit 1; }

for tool in dpkg-deb dpkg-shlibdeps strip gzip; do
  command -v "$tool" >/dev/null || die "$tool is missing (apt-get install dpkg-dev binutils gzip)"
done

version=$(node -p 'require("./package.json").version')
arch=$(dpkg --print-architecture)
node_bin=$(readlink -f "${NODE_BINARY:-$(node -p process.execPath)}")
node_version=$("$node_bin" --version)
case "$node_version" in v20.*) ;; *) die "the runtime must be Node 20, $node_bin is $node_version" ;; esac
changelog_version=$(sed -n '1s/^istio-node-agent (\([^)]*\)).*/\1/p' debian/changelog)
[ "$changelog_version" = "$version" ] ||
  die "debian/changelog's first entry is $changelog_version, package.json says $version: add a changelog entry"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

build=$repo/build
cache=$build/cache
node_hash=$(sha256sum "$node_bin" | cut -c1-16)
sea=$build/sea
root=$build/deb/root
deb=$build/istio-node-agent_${version}_${arch}.deb
bundle=$build/bundle
rm -rf "$sea" "$build/deb" "$bundle"
mkdir -p "$sea" "$root"

log "bundle"
node scripts/build.mjs "$bundle"

log "single executable from $node_bin ($node_version)"
# V8's code cache for the bundle is in the blob (useCodeCache); bench/cert-start.ts measures it.
# shellcheck source=scripts/sea.sh
. "$repo/scripts/sea.sh"
build_sea "$node_bin" "$bundle/istio-node-agent.cjs" "$sea/istio-node-agent" "$build/cache" true false ||
  die "could not build the single executable"
got=$("$sea/istio-node-agent" version)
case "$got" in "istio-node-agent $version "*) ;; *) die "the executable says '$got'" ;; esac

log "staging $root"
install -D -m 0755 "$sea/istio-node-agent" "$root/usr/bin/istio-node-agent"
install -D -m 0644 systemd/istio-auth-node-agent.service "$root/lib/systemd/system/istio-auth-node-agent.service"
log "conffile templates"
node --import tsx scripts/deb/env-templates.ts "$build/deb/env"
install -d -m 0755 "$root/var/lib/istio/envoy"
install -m 0644 "$build/deb/env/cluster.env" "$build/deb/env/sidecar.env" "$root/var/lib/istio/envoy/"
doc=$root/usr/share/doc/istio-node-agent
install -d -m 0755 "$doc"
install -m 0644 debian/copyright "$doc/copyright"
gzip -9n <debian/changelog >"$doc/changelog.gz"
# The reference the help, the man page and the conffiles point at (compressed, as Debian policy
# asks of documentation over 4 KiB; zless reads it).
for d in configuration operations errors; do
  gzip -9n <"docs/$d.md" >"$doc/$d.md.gz"
done
install -D -m 0644 debian/lintian-overrides "$root/usr/share/lintian/overrides/istio-node-agent"
log "third-party licenses"
node --import tsx scripts/deb/third-party.ts "$doc/third-party-licenses.txt" >/dev/null
for legal in "$bundle"/*.LEGAL.txt; do
  [ -e "$legal" ] && install -m 0644 "$legal" "$doc/bundle-legal-comments.txt"
done
nodejs_license=$(dirname "$(dirname "$node_bin")")/share/doc/nodejs/LICENSE
[ -f "$nodejs_license" ] || nodejs_license=$(dirname "$(dirname "$node_bin")")/LICENSE
[ -f "$nodejs_license" ] || die "cannot find Node.js's LICENSE next to $node_bin"
install -m 0644 "$nodejs_license" "$doc/nodejs-LICENSE"
chmod 0644 "$doc"/*

log "man page"
# Every command (from the executable's own --help) and every variable (from
# docs/configuration.md) around the hand-written sections of debian/istio-node-agent.1.in.
date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)
install -d -m 0755 "$root/usr/share/man/man1"
node --import tsx scripts/deb/man-page.ts "$sea/istio-node-agent" "$version" "$date" |
  gzip -9n >"$root/usr/share/man/man1/istio-node-agent.1.gz"
chmod 0644 "$root/usr/share/man/man1/istio-node-agent.1.gz"

log "control"
if [ ! -s "$cache/node-$node_hash.shlibs" ]; then
  (
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    mkdir "$tmp/debian"
    printf 'Source: istio-node-agent\n\nPackage: istio-node-agent\nArchitecture: any\n' >"$tmp/debian/control"
    cd "$tmp" && dpkg-shlibdeps -O -e "$cache/node-$node_hash.stripped" 2>/dev/null |
      sed -n 's/^shlibs:Depends=//p' >"$cache/node-$node_hash.shlibs"
  )
fi
shlibs=$(cat "$cache/node-$node_hash.shlibs")
[ -n "$shlibs" ] || die "dpkg-shlibdeps found no library dependencies"
install -d -m 0755 "$root/DEBIAN"
installed_size=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$installed_size/" \
  -e "s/@SHLIBS@/$shlibs/" debian/control >"$root/DEBIAN/control"
install -m 0644 debian/conffiles "$root/DEBIAN/conffiles"
install -m 0755 debian/postinst debian/prerm debian/postrm "$root/DEBIAN/"
log "md5sums"
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"
# Directories 0755, files as installed above, whatever the umask was.
find "$root" -type d -exec chmod 0755 {} +
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

log "dpkg-deb"
rm -f "$deb"
compression=${DEB_COMPRESSION:-xz}
case "$compression" in xz | gzip | zstd | none) ;; *) die "DEB_COMPRESSION must be xz, gzip, zstd or none" ;; esac
dpkg-deb --root-owner-group "-Z$compression" --build "$root" "$deb" >/dev/null
size=$(stat -c %s "$deb")
log "$deb ($((size / 1024 / 1024)) MiB, installed $((installed_size / 1024)) MiB)"

if [ "${LINTIAN:-0}" = 1 ]; then
  log "lintian"
  lintian --info --display-info "$deb" || die "lintian reported errors"
fi
echo "$deb"
