/**
 * The monitoring endpoint: a small HTTP server, on loopback unless configured otherwise, with
 * four fixed routes. Bounded so that nothing a client does can hold up the agent: GET only, no
 * request body read, small headers, a deadline on every request and idle connection, a cap on
 * open connections; every answer is made from data the agent already holds.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from './logger';

/** What the endpoint answers from; the daemon runner supplies it. */
export interface MonitorSource {
  /** The orchestrator runs (not stopped, not failed). */
  live(): boolean;
  /** Ready, and the JSON body: what is not ready, when something is not. */
  readiness(): { readonly ready: boolean; readonly body: unknown };
  /** The same JSON as `status --json`. */
  status(): unknown;
  /** The Prometheus exposition. */
  metrics(): Promise<{ readonly contentType: string; readonly body: string }>;
}

export interface MonitorServer {
  /** `host:port` as bound (`[v6]:port` for IPv6). */
  readonly address: string;
  close(): Promise<void>;
}

/** The bounds; exported for the tests. */
export const SERVER_LIMITS = {
  maxConnections: 32,
  maxHeaderBytes: 8 * 1024,
  requestTimeoutMs: 5_000,
  idleTimeoutMs: 10_000,
} as const;

export const ROUTES = ['/healthz/live', '/healthz/ready', '/metrics', '/debug/status'] as const;

type Answer = { status: number; type: string; body: string };

const json = (status: number, v: unknown): Answer => ({
  status,
  type: 'application/json; charset=utf-8',
  body: JSON.stringify(v, null, 2) + '\n',
});
const text = (status: number, body: string): Answer => ({
  status,
  type: 'text/plain; charset=utf-8',
  body,
});

/** What a request gets; pure but for the source it reads. */
export async function answer(
  method: string | undefined,
  url: string | undefined,
  source: MonitorSource,
): Promise<Answer & { allow?: string }> {
  const route = (url ?? '/').split('?')[0];
  if (!(ROUTES as readonly string[]).includes(route!))
    return text(404, `not found; try ${ROUTES.join(', ')}\n`);
  if (method !== 'GET') return { ...text(405, 'only GET\n'), allow: 'GET' };
  switch (route) {
    case '/healthz/live':
      return source.live() ? text(200, 'ok\n') : text(503, 'the agent is not running\n');
    case '/healthz/ready': {
      const r = source.readiness();
      return json(r.ready ? 200 : 503, r.body);
    }
    case '/debug/status':
      return json(200, source.status());
    default: {
      const m = await source.metrics();
      return { status: 200, type: m.contentType, body: m.body };
    }
  }
}

/** Listens on `host:port`; rejects (AGENT_E_MONITORING is the caller's) when it cannot. */
export function startMonitorServer(
  listen: { readonly host: string; readonly port: number },
  source: MonitorSource,
  log: Logger,
): Promise<MonitorServer> {
  const server = http.createServer({
    maxHeaderSize: SERVER_LIMITS.maxHeaderBytes,
    requestTimeout: SERVER_LIMITS.requestTimeoutMs,
    headersTimeout: SERVER_LIMITS.requestTimeoutMs,
    keepAliveTimeout: SERVER_LIMITS.requestTimeoutMs,
  });
  server.maxConnections = SERVER_LIMITS.maxConnections;
  server.setTimeout(SERVER_LIMITS.idleTimeoutMs, (socket) => socket.destroy());
  server.on('request', (req, res) => {
    answer(req.method, req.url, source).then(
      (a) => {
        res.writeHead(a.status, {
          'content-type': a.type,
          'cache-control': 'no-store',
          // One request per connection: scrapes are seconds apart, and no idle connection is
          // held open (nor reused by a client just as the server times it out).
          connection: 'close',
          // The whole answer is known: its length, not chunks (simple clients read it as is).
          'content-length': Buffer.byteLength(a.body),
          ...(a.allow ? { allow: a.allow } : {}),
        });
        res.end(a.body);
      },
      (e: unknown) => {
        log.warn({ component: 'monitoring', err: String(e) }, 'monitoring request failed');
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('internal error\n');
      },
    );
    // The body of a GET is never read: drop it without holding the connection on it.
    req.resume();
  });
  server.on('clientError', (_e, socket) => {
    socket.destroy();
  });
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => {
      reject(e);
    };
    server.once('error', onError);
    server.listen(listen.port, listen.host, () => {
      server.off('error', onError);
      server.on('error', (e) => {
        log.warn({ component: 'monitoring', err: e.message }, 'monitoring server error');
      });
      const a = server.address() as AddressInfo;
      const address = a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
      resolve({
        address,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => {
              done();
            });
            server.closeAllConnections();
          }),
      });
    });
  });
}
