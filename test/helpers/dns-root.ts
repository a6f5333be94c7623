import {
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import type { DnsHost } from '../../src/dns/index';
import type { DnsmasqControl, DnsmasqDetection } from '../../src/dns/dnsmasq';
import { AgentError } from '../../src/lib/errors';

export function put(root: string, hostPath: string, content: string, mode = 0o644): void {
  const p = path.join(root, hostPath);
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, content, { mode });
}

export function link(root: string, hostPath: string, target: string): void {
  const p = path.join(root, hostPath);
  mkdirSync(path.dirname(p), { recursive: true });
  symlinkSync(target, p);
}

export function read(root: string, hostPath: string): string {
  return readFileSync(path.join(root, hostPath), 'utf8');
}

/** Every entry under `root` with type, mode, owner and content or link target. */
export function snapshot(root: string, exclude: readonly string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string): void => {
    for (const name of readdirSync(path.join(root, rel)).sort()) {
      const r = path.join(rel, name);
      if (exclude.some((e) => r === e || r.startsWith(e + '/'))) continue;
      const p = path.join(root, r);
      const st = lstatSync(p);
      const meta = `mode=${(st.mode & 0o7777).toString(8)} uid=${st.uid} gid=${st.gid}`;
      if (st.isSymbolicLink()) out[r] = `link -> ${readlinkSync(p)}`;
      else if (st.isDirectory()) {
        out[r] = `dir ${meta}`;
        walk(r);
      } else out[r] = `file ${meta} sha=${Buffer.from(readFileSync(p)).toString('base64')}`;
    }
  };
  walk('');
  return out;
}

/**
 * A test double of the dnsmasq restart interface for unit tests: it records checks and
 * restarts and can be told to fail. (The integration test restarts a real dnsmasq.)
 */
export class RecordingDnsmasq implements DnsmasqControl {
  readonly how = 'test restart';
  restarts = 0;
  tryRestarts = 0;
  checks: string[] = [];
  failRestarts = 0;
  rejectCheck = false;

  check(content: string): Promise<void> {
    this.checks.push(content);
    if (this.rejectCheck)
      return Promise.reject(new AgentError('AGENT_E_DNSMASQ_REJECTED', 'refused by the test'));
    return Promise.resolve();
  }

  restart(opts: { onlyIfRunning?: boolean } = {}): Promise<void> {
    if (opts.onlyIfRunning) this.tryRestarts++;
    else this.restarts++;
    if (this.failRestarts > 0) {
      this.failRestarts--;
      return Promise.reject(
        new AgentError('AGENT_E_DNSMASQ_RESTART', 'dnsmasq failed to start (test)'),
      );
    }
    return Promise.resolve();
  }
}

export function testHost(
  root: string,
  control: DnsmasqControl | undefined,
  opts: { resolvedReloads?: { n: number } } = {},
): DnsHost {
  const det: DnsmasqDetection = control
    ? { installed: true, control }
    : { installed: false, why: 'dnsmasq is not installed' };
  return {
    root,
    detectDnsmasq: () => Promise.resolve(det),
    resolved: {
      how: 'test reload',
      reload: () => {
        if (opts.resolvedReloads) opts.resolvedReloads.n++;
        return Promise.resolve();
      },
    },
    now: () => Date.UTC(2026, 0, 1),
  };
}
