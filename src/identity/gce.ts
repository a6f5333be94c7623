import { AgentError } from '../lib/errors';

/**
 * The GCE metadata server as the VM's identity source (CITADEL_ENV=gcp), the way Istio 1.0's
 * node agent used it (security/pkg/platform/gcp.go): an identity token (JWT) for an audience,
 * and the default service account's email for the identity
 * spiffe://cluster.local/ns/default/sa/<email>.
 *
 * Every request carries `Metadata-Flavor: Google` and every answer must carry it back: an answer
 * without it did not come from the metadata server (a proxy, a captive portal, a different
 * service on that address) and is refused. Tokens are returned, never logged.
 *
 * Node's global fetch is enough for these single GETs (see docs/decisions.md).
 */

export const METADATA_FLAVOR = 'Google';

/**
 * The most a metadata answer may hold. An identity token is ~1 KiB, an email far less; a larger
 * body is not the metadata server's answer. It is read as a stream and dropped once past this,
 * never buffered whole (a 50 MB "token" once cost 823 MB of memory and became a gRPC header).
 */
export const MAX_METADATA_BODY_BYTES = 64 * 1024;
const BASE_PATH = '/computeMetadata/v1';

export interface MetadataRequest {
  /** host or host:port of the metadata server (GCE_METADATA_HOST). */
  readonly host: string;
  /** Deadline of the request. */
  readonly timeoutMs: number;
  /** Aborting rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

export interface IdentityTokenRequest extends MetadataRequest {
  readonly audience: string;
}

function url(host: string, pathAndQuery: string): string {
  return `http://${host}${BASE_PATH}${pathAndQuery}`;
}

/** GET with the header, a deadline, no redirects; maps failures to the metadata error codes. */
async function getText(req: MetadataRequest, pathAndQuery: string, what: string): Promise<string> {
  const target = url(req.host, pathAndQuery);
  const timeout = AbortSignal.timeout(req.timeoutMs);
  const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
  let res: Response;
  try {
    res = await fetch(target, {
      headers: { 'Metadata-Flavor': METADATA_FLAVOR },
      redirect: 'manual',
      signal,
    });
  } catch (e) {
    if (req.signal?.aborted) throw req.signal.reason as Error;
    const why = timeout.aborted ? `no answer within ${req.timeoutMs} ms` : describeFetchError(e);
    throw new AgentError(
      'AGENT_E_METADATA_UNAVAILABLE',
      `the GCE metadata server at ${req.host} is unavailable (${what}): ${why}; check GCE_METADATA_HOST and that this is a GCE VM`,
      { cause: e, details: { host: req.host, what } },
    );
  }
  const refuse = (why: string): AgentError =>
    new AgentError(
      'AGENT_E_METADATA_BAD_RESPONSE',
      `refused the answer of the GCE metadata server at ${req.host} (${what}): ${why}`,
      { details: { host: req.host, what, status: res.status } },
    );
  if (res.headers.get('metadata-flavor') !== METADATA_FLAVOR) {
    await discard(res);
    throw refuse('it lacks the header Metadata-Flavor: Google, so it is not the metadata server');
  }
  if (res.status !== 200) {
    await discard(res);
    throw refuse(`HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`);
  }
  let body: string | undefined;
  try {
    body = await readCapped(res, MAX_METADATA_BODY_BYTES);
  } catch (e) {
    if (req.signal?.aborted) throw req.signal.reason as Error;
    const why = timeout.aborted ? `no answer within ${req.timeoutMs} ms` : describeFetchError(e);
    throw new AgentError(
      'AGENT_E_METADATA_UNAVAILABLE',
      `the GCE metadata server at ${req.host} broke off its answer (${what}): ${why}`,
      { cause: e, details: { host: req.host, what } },
    );
  }
  if (body === undefined) {
    throw refuse(
      `the body is larger than ${MAX_METADATA_BODY_BYTES / 1024} KiB, which no metadata answer is; check GCE_METADATA_HOST`,
    );
  }
  const text = body.trim();
  if (text === '') throw refuse('the body is empty');
  return text;
}

/**
 * The body as text, read chunk by chunk; undefined (and the rest left unread, the connection
 * closed) as soon as it passes `max` bytes, or when Content-Length already says it would.
 */
async function readCapped(res: Response, max: number): Promise<string | undefined> {
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > max) {
    await discard(res);
    return undefined;
  }
  if (!res.body) return '';
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Drops a body that will not be read (closes the connection rather than draining it). */
async function discard(res: Response): Promise<void> {
  await res.body?.cancel().catch(() => undefined);
}

function describeFetchError(e: unknown): string {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code) return `${cause.code}${cause.message ? ` (${cause.message})` : ''}`;
  return e instanceof Error ? e.message : String(e);
}

const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/**
 * The VM's identity token for `audience`, in full format (it names the project and instance):
 * GET /computeMetadata/v1/instance/service-accounts/default/identity?audience=…&format=full.
 * Fetch it fresh for each CSR: it lives one hour.
 */
export async function fetchIdentityToken(req: IdentityTokenRequest): Promise<string> {
  const token = await getText(
    req,
    `/instance/service-accounts/default/identity?audience=${encodeURIComponent(req.audience)}&format=full`,
    'identity token',
  );
  if (!JWT.test(token)) {
    throw new AgentError(
      'AGENT_E_METADATA_BAD_RESPONSE',
      `refused the answer of the GCE metadata server at ${req.host} (identity token): it is not a JWT`,
      { details: { host: req.host, what: 'identity token' } },
    );
  }
  return token;
}

/** The default service account's email: GET /computeMetadata/v1/instance/service-accounts/default/email. */
export async function fetchServiceAccountEmail(req: MetadataRequest): Promise<string> {
  const email = await getText(
    req,
    '/instance/service-accounts/default/email',
    'service account email',
  );
  if (!/^[^\s@/]+@[^\s@/]+$/.test(email)) {
    throw new AgentError(
      'AGENT_E_METADATA_BAD_RESPONSE',
      `refused the answer of the GCE metadata server at ${req.host} (service account email): "${email.slice(0, 80)}" is not an email address`,
      { details: { host: req.host, what: 'service account email' } },
    );
  }
  return email;
}

/** The identity Istio 1.0 asked for on GCE: spiffe://cluster.local/ns/default/sa/<email>. */
export function gceIdentity(email: string): string {
  return `spiffe://cluster.local/ns/default/sa/${email}`;
}

/**
 * Whether a GCE metadata server answers at `host` (CITADEL_ENV=auto): any answer that carries
 * `Metadata-Flavor: Google` within `timeoutMs` counts, as Google's own client libraries check.
 * Never throws, except with the signal's reason when `signal` aborts.
 */
export async function detectGce(req: MetadataRequest): Promise<boolean> {
  const timeout = AbortSignal.timeout(req.timeoutMs);
  const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
  try {
    const res = await fetch(url(req.host, '/'), {
      headers: { 'Metadata-Flavor': METADATA_FLAVOR },
      redirect: 'manual',
      signal,
    });
    await res.body?.cancel();
    return res.headers.get('metadata-flavor') === METADATA_FLAVOR;
  } catch {
    if (req.signal?.aborted) throw req.signal.reason as Error;
    return false;
  }
}
