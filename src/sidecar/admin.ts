/**
 * envoy's admin endpoint on 127.0.0.1: readiness (`/ready`, with `/server_info` for the epoch and
 * for envoys older than `/ready`), and the drain calls made before stopping.
 */
import * as http from 'node:http';

export type ProxyState =
  'LIVE' | 'DRAINING' | 'PRE_INITIALIZING' | 'INITIALIZING' | 'UNREACHABLE' | 'UNKNOWN';

export interface Probe {
  readonly state: ProxyState;
  /** The answering envoy's `--restart-epoch`, when `/server_info` tells. */
  readonly epoch: number | undefined;
}

/** The one external actor "envoy admin", so tests and other transports can stand in. */
export interface AdminClient {
  probe(): Promise<Probe>;
  /** POSTs `path`; resolves with the HTTP status, or undefined when envoy did not answer. */
  post(path: string): Promise<number | undefined>;
}

const STATES: readonly ProxyState[] = ['LIVE', 'DRAINING', 'PRE_INITIALIZING', 'INITIALIZING'];

/** The state word in a `/ready` body ("LIVE\n") or undefined. */
export function parseReadyBody(body: string): ProxyState | undefined {
  const w = body.trim().toUpperCase();
  return STATES.find((s) => s === w);
}

/**
 * `state` and `command_line_options.restart_epoch` from `/server_info`: JSON since envoy 1.8,
 * a text line `envoy <version> <state> <uptime> …` before.
 */
export function parseServerInfo(body: string): {
  state: ProxyState | undefined;
  epoch: number | undefined;
} {
  try {
    const j = JSON.parse(body) as {
      state?: unknown;
      command_line_options?: { restart_epoch?: unknown };
    };
    const state = typeof j.state === 'string' ? parseReadyBody(j.state) : undefined;
    const e = j.command_line_options?.restart_epoch;
    const epoch =
      typeof e === 'number' ? e : typeof e === 'string' && /^\d+$/.test(e) ? Number(e) : undefined;
    return { state, epoch };
  } catch {
    const m = /^envoy\s+\S+\s+(\w+)/.exec(body.trim());
    const state = m ? parseReadyBody(m[1]!) : undefined;
    return { state, epoch: undefined };
  }
}

interface Reply {
  readonly status: number;
  readonly body: string;
}

function request(
  port: number,
  method: string,
  path: string,
  timeoutMs: number,
): Promise<Reply | undefined> {
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: false,
        timeout: timeoutMs,
        headers: { connection: 'close' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (b: Buffer) => {
          size += b.length;
          if (size <= 65536) chunks.push(b);
        });
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', () => {
          resolve(undefined);
        });
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => {
      resolve(undefined);
    });
    req.end();
  });
}

/** The real admin client: plain HTTP to 127.0.0.1:`port`, each call bounded by `timeoutMs`. */
export function httpAdmin(port: number, timeoutMs = 1000): AdminClient {
  return {
    async probe() {
      const ready = await request(port, 'GET', '/ready', timeoutMs);
      if (!ready) return { state: 'UNREACHABLE', epoch: undefined };
      let state: ProxyState | undefined =
        ready.status === 404 ? undefined : parseReadyBody(ready.body);
      if (ready.status === 200 && state === undefined) state = 'LIVE';
      // /server_info: which epoch answers (after a hot restart), and the state on envoys before /ready.
      const info = await request(port, 'GET', '/server_info', timeoutMs);
      const parsed =
        info && info.status === 200
          ? parseServerInfo(info.body)
          : { state: undefined, epoch: undefined };
      return { state: state ?? parsed.state ?? 'UNKNOWN', epoch: parsed.epoch };
    },
    async post(path) {
      const r = await request(port, 'POST', path, timeoutMs);
      return r?.status;
    },
  };
}
