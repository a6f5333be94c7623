import { parseCidr, type Cidr } from '../net';
import type { RawEnv } from '../raw';
import type { CaptureConfig } from '../types';

/** A user name as useradd accepts it, or a numeric uid. No ':' or whitespace, no leading '-'. */
const USER_NAME = /^(?:[A-Za-z0-9_.][A-Za-z0-9_.-]{0,31}\$?)$/;

export function parseCapture(raw: RawEnv): CaptureConfig {
  const envoyPort = raw.port('ENVOY_PORT', 15001);
  const envoyUser = raw.str('ENVOY_USER', 'istio-proxy');
  if (!USER_NAME.test(envoyUser))
    raw.report('ENVOY_USER', `"${envoyUser}" is not a user name or uid`);
  const enableInboundIpv6 = raw.bool('ENABLE_INBOUND_IPV6', false);
  const rejectInboundIpv6 = raw.bool('ISTIO_REJECT_INBOUND_IPV6', false);
  if (rejectInboundIpv6 && enableInboundIpv6) {
    raw.report(
      'ISTIO_REJECT_INBOUND_IPV6',
      'cannot reject inbound IPv6 while ENABLE_INBOUND_IPV6 captures it; set only one of them',
    );
  }
  return {
    enabled: raw.bool('ISTIO_CAPTURE', true),
    serviceCidrs: starOr(raw, 'ISTIO_SERVICE_CIDR', () => cidrs(raw, 'ISTIO_SERVICE_CIDR')),
    serviceExcludeCidrs: cidrs(raw, 'ISTIO_SERVICE_EXCLUDE_CIDR'),
    inboundPorts: starOr(raw, 'ISTIO_INBOUND_PORTS', () => ports(raw, 'ISTIO_INBOUND_PORTS')),
    localExcludePorts: ports(raw, 'ISTIO_LOCAL_EXCLUDE_PORTS'),
    mode: raw.oneOf('ISTIO_INBOUND_INTERCEPTION_MODE', ['REDIRECT', 'TPROXY'] as const, 'REDIRECT'),
    tproxyMark: raw.int('ISTIO_INBOUND_TPROXY_MARK', 1337, 1, 0xffffffff),
    tproxyRouteTable: raw.int('ISTIO_INBOUND_TPROXY_ROUTE_TABLE', 133, 1, 252),
    envoyPort,
    inboundCapturePort: raw.port('INBOUND_CAPTURE_PORT', envoyPort),
    envoyUser,
    envoyUserOrigin: raw.get('ENVOY_USER') ? raw.origin('ENVOY_USER') : undefined,
    enableInboundIpv6,
    rejectInboundIpv6,
    backend: raw.oneOf('ISTIO_IPTABLES_BACKEND', ['auto', 'nft', 'legacy'] as const, 'auto'),
    keepOnStop: raw.bool('ISTIO_CAPTURE_KEEP_ON_STOP', false),
    checkIntervalMs: raw.duration('ISTIO_CAPTURE_CHECK_INTERVAL', 30_000, 1000, 86_400_000),
  };
}

function starOr<T>(raw: RawEnv, key: string, parse: () => T): '*' | T {
  return raw.get(key)?.value.trim() === '*' ? '*' : parse();
}

export function cidrs(raw: RawEnv, key: string): Cidr[] {
  return raw.list(key).flatMap((s) => {
    const c = parseCidr(s);
    if (typeof c !== 'string') return [c];
    raw.report(key, c);
    return [];
  });
}

export function ports(raw: RawEnv, key: string): number[] {
  return raw.list(key).flatMap((s) => {
    if (/^\d{1,5}$/.test(s) && Number(s) >= 1 && Number(s) <= 65535) return [Number(s)];
    raw.report(key, `"${s}" is not a port (1-65535)`);
    return [];
  });
}
