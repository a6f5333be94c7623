import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createNetns, type Netns } from './netns';

/**
 * Two test hosts joined by a veth pair: `host` (10.200.0.1, fd00:200::1) is where capture is
 * applied; `peer` (10.200.0.2, fd00:200::2) plays the rest of the network: it owns the service
 * addresses (10.96.0.10, 10.96.5.5, 10.100.0.7, fd00:96::10) on its loopback, and `host` routes
 * 10.96.0.0/16, 10.100.0.0/16 and fd00:96::/64 to it.
 */
export interface CaptureNet {
  readonly host: Netns;
  readonly peer: Netns;
  remove(): void;
}

export const HOST_IP = '10.200.0.1';
export const PEER_IP = '10.200.0.2';
export const SERVICE_IP = '10.96.0.10';
export const EXCLUDED_IP = '10.96.5.5';
export const SERVICE2_IP = '10.100.0.7';
export const SERVICE_IP6 = 'fd00:96::10';

export function createCaptureNet(prefix: string): CaptureNet {
  const host = createNetns(`${prefix}h`);
  const peer = createNetns(`${prefix}p`);
  try {
    const ip = (ns: Netns, ...args: string[]): void => {
      execFileSync('ip', ['-n', ns.name, ...args]);
    };
    ip(host, 'link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'veth1', 'netns', peer.name);
    ip(host, 'addr', 'add', `${HOST_IP}/24`, 'dev', 'veth0');
    ip(host, '-6', 'addr', 'add', 'fd00:200::1/64', 'dev', 'veth0', 'nodad');
    ip(host, 'link', 'set', 'veth0', 'up');
    ip(peer, 'addr', 'add', `${PEER_IP}/24`, 'dev', 'veth1');
    ip(peer, '-6', 'addr', 'add', 'fd00:200::2/64', 'dev', 'veth1', 'nodad');
    ip(peer, 'link', 'set', 'veth1', 'up');
    for (const a of [SERVICE_IP, EXCLUDED_IP, SERVICE2_IP])
      ip(peer, 'addr', 'add', `${a}/32`, 'dev', 'lo');
    ip(peer, '-6', 'addr', 'add', `${SERVICE_IP6}/128`, 'dev', 'lo', 'nodad');
    for (const n of ['10.96.0.0/16', '10.100.0.0/16']) ip(host, 'route', 'add', n, 'via', PEER_IP);
    ip(host, '-6', 'route', 'add', 'fd00:96::/64', 'via', 'fd00:200::2');
  } catch (e) {
    host.remove();
    peer.remove();
    throw e;
  }
  return {
    host,
    peer,
    remove() {
      host.remove();
      peer.remove();
    },
  };
}

/** A user from /etc/passwd whose uid and primary gid differ (neither 0), to tell gid rules from uid rules. */
export function userWithDistinctGid(): { name: string; uid: number; gid: number } | undefined {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f.length < 4) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (uid > 0 && gid > 0 && uid !== gid && gid !== 65534 && uid < 60000)
      return { name: f[0]!, uid, gid };
  }
  return undefined;
}

/** iptables-save (both families) of a namespace, with the given backend. */
export function saveAll(ns: Netns, backend: 'nft' | 'legacy' = 'nft'): string {
  return ns.runSync(`iptables-${backend}-save`, []) + ns.runSync(`ip6tables-${backend}-save`, []);
}
