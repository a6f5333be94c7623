#!/bin/bash
# The call sequence of Istio 1.0's tools/deb/istio-iptables.sh (tag 1.0.0, same in release-1.0),
# rewritten from the behavioural description in docs (shared/reference/istio-1.0-vm.md, section 3)
# for bench/iptables-apply.ts: one `iptables` process per chain and per rule, after a cleanup
# that deletes the jumps and flushes/deletes every chain. Only here to be timed against
# `istio-node-agent iptables apply`; not shipped.
#
# BENCH_SKIP_DUMP=1 leaves out 1.0's EXIT trap (iptables-save), so only the iptables calls and
# the user lookup are timed (the stricter comparison).

IFS=,

if [ -z "${BENCH_SKIP_DUMP:-}" ]; then
  trap 'iptables-save' EXIT
fi

cluster_env=${ISTIO_CLUSTER_CONFIG:-/var/lib/istio/envoy/cluster.env}
sidecar_env=${ISTIO_SIDECAR_CONFIG:-/var/lib/istio/envoy/sidecar.env}
# 1.0 read cluster.env first, then sidecar.env.
[ -r "$cluster_env" ] && . "$cluster_env"
[ -r "$sidecar_env" ] && . "$sidecar_env"

PROXY_PORT=${ENVOY_PORT:-15001}
INBOUND_CAPTURE_PORT=${INBOUND_CAPTURE_PORT:-$PROXY_PORT}
MODE=${ISTIO_INBOUND_INTERCEPTION_MODE:-}
MARK=${ISTIO_INBOUND_TPROXY_MARK:-1337}
ROUTE_TABLE=${ISTIO_INBOUND_TPROXY_ROUTE_TABLE:-133}
PORTS_IN=${ISTIO_INBOUND_PORTS-}
PORTS_SKIP=${ISTIO_LOCAL_EXCLUDE_PORTS-}
RANGES_IN=${ISTIO_SERVICE_CIDR-}
RANGES_SKIP=${ISTIO_SERVICE_EXCLUDE_CIDR-}

# uid of the proxy user (1337 when it does not exist), then root; the same numbers serve as gids.
if ! UIDS=$(id -u "${ENVOY_USER:-istio-proxy}" 2>/dev/null); then UIDS=1337; fi
UIDS="${UIDS},0"
GIDS=$UIDS

# Cleanup: every error ignored.
iptables -t nat -D PREROUTING -p tcp -j ISTIO_INBOUND 2>/dev/null
iptables -t mangle -D PREROUTING -p tcp -j ISTIO_INBOUND 2>/dev/null
iptables -t nat -D OUTPUT -p tcp -j ISTIO_OUTPUT 2>/dev/null
for tc in nat:ISTIO_OUTPUT nat:ISTIO_INBOUND mangle:ISTIO_INBOUND mangle:ISTIO_DIVERT mangle:ISTIO_TPROXY \
  nat:ISTIO_REDIRECT nat:ISTIO_IN_REDIRECT; do
  iptables -t "${tc%%:*}" -F "${tc#*:}" 2>/dev/null
  iptables -t "${tc%%:*}" -X "${tc#*:}" 2>/dev/null
done

if [ "${1:-}" = clean ]; then
  echo "Only cleaning, no new rules added"
  exit 0
fi

echo "PROXY_PORT=$PROXY_PORT INBOUND_CAPTURE_PORT=$INBOUND_CAPTURE_PORT PROXY_UID=$UIDS MODE=$MODE"
echo "INBOUND=$PORTS_IN EXCLUDE=$PORTS_SKIP OUTBOUND=$RANGES_IN EXCLUDE=$RANGES_SKIP"

set -o errexit -o nounset -o pipefail
set -x

iptables -t nat -N ISTIO_REDIRECT
iptables -t nat -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-port "$PROXY_PORT"
iptables -t nat -N ISTIO_IN_REDIRECT
iptables -t nat -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-port "$INBOUND_CAPTURE_PORT"

if [ -n "$PORTS_IN" ]; then
  if [ "$MODE" = TPROXY ]; then
    iptables -t mangle -N ISTIO_DIVERT
    iptables -t mangle -A ISTIO_DIVERT -j MARK --set-mark "$MARK"
    iptables -t mangle -A ISTIO_DIVERT -j ACCEPT
    ip -f inet rule add fwmark "$MARK" lookup "$ROUTE_TABLE"
    ip -f inet route add local default dev lo table "$ROUTE_TABLE"
    iptables -t mangle -N ISTIO_TPROXY
    iptables -t mangle -A ISTIO_TPROXY ! -d 127.0.0.1/32 -p tcp -j TPROXY --tproxy-mark "$MARK/0xffffffff" --on-port "$PROXY_PORT"
    t=mangle
  else
    t=nat
  fi
  iptables -t $t -N ISTIO_INBOUND
  iptables -t $t -A PREROUTING -p tcp -j ISTIO_INBOUND
  if [ "$PORTS_IN" = "*" ]; then
    iptables -t $t -A ISTIO_INBOUND -p tcp --dport 22 -j RETURN
    for p in $PORTS_SKIP; do
      iptables -t $t -A ISTIO_INBOUND -p tcp --dport "$p" -j RETURN
    done
    if [ "$MODE" = TPROXY ]; then
      iptables -t mangle -A ISTIO_INBOUND -p tcp -m socket -j ISTIO_DIVERT
      iptables -t mangle -A ISTIO_INBOUND -p tcp -j ISTIO_TPROXY
    else
      iptables -t nat -A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
    fi
  else
    for p in $PORTS_IN; do
      if [ "$MODE" = TPROXY ]; then
        # 1.0 appended this rule twice.
        iptables -t mangle -A ISTIO_INBOUND -p tcp --dport "$p" -m socket -j ISTIO_DIVERT
        iptables -t mangle -A ISTIO_INBOUND -p tcp --dport "$p" -m socket -j ISTIO_DIVERT
        iptables -t mangle -A ISTIO_INBOUND -p tcp --dport "$p" -j ISTIO_TPROXY
      else
        iptables -t nat -A ISTIO_INBOUND -p tcp --dport "$p" -j ISTIO_IN_REDIRECT
      fi
    done
  fi
fi

iptables -t nat -N ISTIO_OUTPUT
iptables -t nat -A OUTPUT -p tcp -j ISTIO_OUTPUT
iptables -t nat -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -j ISTIO_REDIRECT
for u in $UIDS; do
  iptables -t nat -A ISTIO_OUTPUT -m owner --uid-owner "$u" -j RETURN
done
for g in $GIDS; do
  iptables -t nat -A ISTIO_OUTPUT -m owner --gid-owner "$g" -j RETURN
done
iptables -t nat -A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
for c in $RANGES_SKIP; do
  iptables -t nat -A ISTIO_OUTPUT -d "$c" -j RETURN
done
if [ "$RANGES_IN" = "*" ]; then
  iptables -t nat -A ISTIO_OUTPUT -j ISTIO_REDIRECT
elif [ -n "$RANGES_IN" ]; then
  for c in $RANGES_IN; do
    iptables -t nat -A ISTIO_OUTPUT -d "$c" -j ISTIO_REDIRECT
  done
  iptables -t nat -A ISTIO_OUTPUT -j RETURN
fi

# Unless ENABLE_INBOUND_IPV6 is set: flush ip6tables INPUT and reject all but established.
if [ -z "${ENABLE_INBOUND_IPV6:-}" ]; then
  ip6tables -F INPUT || true
  ip6tables -A INPUT -m state --state ESTABLISHED -j ACCEPT || true
  ip6tables -A INPUT -j REJECT || true
fi
