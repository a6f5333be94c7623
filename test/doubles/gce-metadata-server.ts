// TEST DOUBLE of the GCE metadata server (169.254.169.254), which cannot run here: an HTTP
// server on loopback that serves the two paths the agent reads, and misbehaves on request.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export type MetadataMode =
  /** Answers as GCE does. */
  | 'ok'
  /** Answers 200 with the body but without `Metadata-Flavor: Google` (not the metadata server). */
  | 'no-flavor'
  /** Answers 404 (e.g. no service account attached), with the header. */
  | 'not-found'
  /** Holds every request for `delayMs` before answering (to trip timeouts). */
  | 'slow'
  /** Answers 200 with an empty body. */
  | 'empty'
  /** Answers 200 with a body of `hugeBytes` shaped like the real answer (a JWT, an email). */
  | 'huge'
  /** Answers 200 and streams body bytes for as long as the client reads (no Content-Length). */
  | 'endless';

export interface MetadataRequestRecord {
  readonly path: string;
  readonly query: Record<string, string>;
  readonly flavor: string | undefined;
}

export interface GceMetadataDouble {
  /** 127.0.0.1:<port>, what GCE_METADATA_HOST would hold. */
  readonly host: string;
  readonly requests: readonly MetadataRequestRecord[];
  mode: MetadataMode;
  delayMs: number;
  token: string;
  email: string;
  /** Body size in 'huge' mode; default 1 MiB. */
  hugeBytes: number;
  /** Body bytes written so far in 'endless' mode (all requests). */
  readonly streamed: number;
  close(): Promise<void>;
}

export async function startGceMetadataDouble(
  init: Partial<Pick<GceMetadataDouble, 'mode' | 'delayMs' | 'token' | 'email' | 'hugeBytes'>> = {},
): Promise<GceMetadataDouble> {
  const requests: MetadataRequestRecord[] = [];
  const state = {
    mode: init.mode ?? 'ok',
    delayMs: init.delayMs ?? 2000,
    token:
      init.token ??
      fakeJwt({ aud: 'grpc://istio-citadel:8060', email: 'vm@project.iam.gserviceaccount.com' }),
    email: init.email ?? 'vm@project.iam.gserviceaccount.com',
    hugeBytes: init.hugeBytes ?? 1 << 20,
    streamed: 0,
  };
  const timers = new Set<NodeJS.Timeout>();
  const server = http.createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://metadata');
    const flavor = req.headers['metadata-flavor'];
    requests.push({
      path: u.pathname,
      query: Object.fromEntries(u.searchParams),
      flavor: typeof flavor === 'string' ? flavor : undefined,
    });
    const answer = (): void => {
      const headers: Record<string, string> = { 'content-type': 'application/text' };
      if (state.mode !== 'no-flavor') headers['metadata-flavor'] = 'Google';
      // The real server refuses requests without the header (403).
      if (flavor !== 'Google') {
        res.writeHead(403, headers).end('Missing Metadata-Flavor:Google header.\n');
        return;
      }
      if (state.mode === 'not-found') {
        res.writeHead(404, headers).end('not found\n');
        return;
      }
      let body: string | undefined;
      if (u.pathname === '/' || u.pathname === '/computeMetadata/v1/') body = 'computeMetadata/\n';
      else if (u.pathname === '/computeMetadata/v1/instance/service-accounts/default/email')
        body = state.email;
      else if (u.pathname === '/computeMetadata/v1/instance/service-accounts/default/identity') {
        body = u.searchParams.get('audience') ? state.token : undefined;
      }
      if (body === undefined) {
        res.writeHead(404, headers).end('not found\n');
        return;
      }
      if (state.mode === 'endless') {
        res.writeHead(200, headers);
        const chunk = Buffer.alloc(16 * 1024, 'a');
        const pump = (): void => {
          while (!res.destroyed) {
            state.streamed += chunk.length;
            if (!res.write(chunk)) {
              res.once('drain', pump);
              return;
            }
          }
        };
        pump();
        return;
      }
      if (state.mode === 'huge') body = huge(body, state.hugeBytes);
      res.writeHead(200, headers).end(state.mode === 'empty' ? '' : body);
    };
    if (state.mode === 'slow') {
      const t = setTimeout(() => {
        timers.delete(t);
        answer();
      }, state.delayMs);
      timers.add(t);
    } else {
      answer();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    requests,
    get mode() {
      return state.mode;
    },
    set mode(m) {
      state.mode = m;
    },
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(ms) {
      state.delayMs = ms;
    },
    get token() {
      return state.token;
    },
    set token(t) {
      state.token = t;
    },
    get email() {
      return state.email;
    },
    set email(e) {
      state.email = e;
    },
    get hugeBytes() {
      return state.hugeBytes;
    },
    set hugeBytes(n) {
      state.hugeBytes = n;
    },
    get streamed() {
      return state.streamed;
    },
    close() {
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      return new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      );
    },
  };
}

/** `body` padded to `bytes`, keeping its shape: a longer JWT payload, a longer email local part. */
function huge(body: string, bytes: number): string {
  const pad = Math.max(0, bytes - body.length);
  if (body.includes('@')) return 'a'.repeat(pad) + body;
  const [h, p, sig] = body.split('.');
  return `${h}.${p}${'A'.repeat(pad)}.${sig}`;
}

/** An unsigned JWT-shaped token with the given claims (the double does not sign). */
export function fakeJwt(claims: Record<string, unknown>): string {
  const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ iss: 'https://accounts.google.com', ...claims })}.c2lnbmF0dXJl`;
}
