/**
 * TEST DOUBLE of the Kubernetes API server: what `istio-node-agent cluster …` talks to in tests.
 * No real kube-apiserver can run here (it needs etcd and a cluster), so this stands in for it.
 *
 * Contract (what it implements, and how faithfully):
 * - HTTPS on 127.0.0.1 with its own CA (`caPem`), server certificate for 127.0.0.1/localhost.
 * - Authentication: a client certificate signed by its client CA (user = CN, groups = O), or
 *   `Authorization: Bearer <token>` from `tokens`. Anything else: 401 `Unauthorized` Status.
 * - Authorization: RBAC-like rules per user (`rules`); a user without an entry may do anything.
 *   A refusal is a 403 `Forbidden` Status worded as the real API server words it
 *   (`secrets "x" is forbidden: User "u" cannot get resource "secrets" in API group "" in the
 *   namespace "ns"`, `… at the cluster scope`).
 * - Resources: core/v1 `services`, `endpoints`, `secrets` (namespaced); discovery.k8s.io/v1
 *   `endpointslices` (namespaced); networking.k8s.io/v1 `servicecidrs` (cluster-scoped, read
 *   only, only when `serveServiceCidrs`; else its path gives the plain-text `404 page not found`
 *   of an unknown group/version, as the real server does).
 * - Verbs: get, list (equality `labelSelector` only), create (POST), update (PUT), delete.
 *   No patch, watch, field selectors, subresources (`/status`), pagination or discovery.
 * - Objects are stored as JSON; `metadata.resourceVersion` is a global counter. An update must
 *   carry the current resourceVersion: none is 422 Invalid, a stale one 409 Conflict
 *   (`Operation cannot be fulfilled on …: the object has been modified; …`). A create of an
 *   existing name is 409 AlreadyExists, a get/update/delete of a missing one 404 NotFound.
 *   Namespaces exist implicitly (any name is accepted).
 * - Services: `spec.clusterIP` is allocated from `serviceCidrs` (first range of the family);
 *   one given outside every range is 422 with the allocator's message (`… The range of valid
 *   IPs is 10.96.0.0/12`); an IPv6 one on a cluster without an IPv6 range is 422
 *   `… not configured on this cluster`. An update keeps the stored `status` (as the real
 *   server ignores status on the main resource) and refuses a changed clusterIP.
 * - `?dryRun=All`: everything is checked and answered, nothing is stored.
 * - Test controls: `put`/`object`/`remove` objects directly, `setLoadBalancer` (a Service's
 *   `status.loadBalancer.ingress`), `interfere` (a concurrent writer changes an object just
 *   before our next update of it, so that update meets a 409), `onRequest` hooks, and the
 *   `requests` log.
 * Not implemented: admission (no defaulting beyond what is said above), garbage collection of
 * owned objects, the EndpointSlice mirroring and endpoints controllers, API priority and
 * fairness, audit, warnings headers.
 */
import { X509Certificate, randomBytes, randomUUID, webcrypto } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import * as https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { x509 } from '../../src/lib/x509';

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface KubeUser {
  readonly name: string;
  readonly groups: readonly string[];
}

/** One RBAC rule: like a Role's, plus the namespaces it applies in (absent: everywhere). */
export interface RbacRule {
  readonly verbs: readonly string[];
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  /** Namespaces where the rule applies; absent: all namespaces and the cluster scope. */
  readonly namespaces?: readonly string[];
}

export interface KubeApiServerOptions {
  /** The service ranges (default 10.96.0.0/12). */
  readonly serviceCidrs?: readonly string[];
  /** Serve networking.k8s.io/v1 servicecidrs (default true). */
  readonly serveServiceCidrs?: boolean;
  /** Bearer tokens and the user each one is. */
  readonly tokens?: Readonly<Record<string, KubeUser>>;
  /** Per user name: what the user may do. A user with no entry may do everything. */
  readonly rules?: Readonly<Record<string, readonly RbacRule[]>>;
}

export interface RequestRecord {
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly user: string | undefined;
  readonly verb: string;
  readonly resource: string;
  readonly namespace: string | undefined;
  readonly name: string | undefined;
  readonly dryRun: boolean;
  status: number;
  /** The request body, parsed. */
  readonly body: unknown;
}

export type KubeObject = {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    resourceVersion?: string;
    uid?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    generateName?: string;
    creationTimestamp?: string;
    [k: string]: unknown;
  };
  [k: string]: unknown;
};

interface ResourceType {
  readonly group: string;
  readonly version: string;
  readonly resource: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

const TYPES: readonly ResourceType[] = [
  { group: '', version: 'v1', resource: 'services', kind: 'Service', namespaced: true },
  { group: '', version: 'v1', resource: 'endpoints', kind: 'Endpoints', namespaced: true },
  { group: '', version: 'v1', resource: 'secrets', kind: 'Secret', namespaced: true },
  {
    group: 'discovery.k8s.io',
    version: 'v1',
    resource: 'endpointslices',
    kind: 'EndpointSlice',
    namespaced: true,
  },
  {
    group: 'networking.k8s.io',
    version: 'v1',
    resource: 'servicecidrs',
    kind: 'ServiceCIDR',
    namespaced: false,
  },
];

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

interface Pki {
  readonly caPem: string;
  readonly serverCertPem: string;
  readonly serverKeyPem: string;
  readonly clientCa: { cert: x509.X509Certificate; keys: webcrypto.CryptoKeyPair; pem: string };
}

async function pem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----\n`.replace(
    /\n\n/g,
    '\n',
  );
}

async function selfSigned(name: string): Promise<{
  cert: x509.X509Certificate;
  keys: webcrypto.CryptoKeyPair;
  pem: string;
}> {
  const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString('hex'),
    name,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 24 * 3600_000),
    keys,
    signingAlgorithm: EC,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
    ],
  });
  return { cert, keys, pem: cert.toString('pem') + '\n' };
}

async function issue(
  ca: { cert: x509.X509Certificate; keys: webcrypto.CryptoKeyPair },
  subject: string,
  opts: { sans?: { type: 'ip' | 'dns'; value: string }[]; client?: boolean },
): Promise<{ certPem: string; keyPem: string }> {
  const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(8).toString('hex'),
    subject,
    issuer: ca.cert.subject,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + 24 * 3600_000),
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: EC,
    extensions: [
      new x509.ExtendedKeyUsageExtension([
        opts.client ? x509.ExtendedKeyUsage.clientAuth : x509.ExtendedKeyUsage.serverAuth,
      ]),
      ...(opts.sans ? [new x509.SubjectAlternativeNameExtension(opts.sans)] : []),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await pem(keys.privateKey) };
}

async function makePki(): Promise<Pki> {
  const ca = await selfSigned('CN=kube-apiserver double CA');
  const clientCa = await selfSigned('CN=kube-apiserver double client CA');
  const server = await issue(ca, 'CN=kube-apiserver', {
    sans: [
      { type: 'ip', value: '127.0.0.1' },
      { type: 'dns', value: 'localhost' },
    ],
  });
  return {
    caPem: ca.pem,
    serverCertPem: server.certPem,
    serverKeyPem: server.keyPem,
    clientCa,
  };
}

/** Parses `a.b.c.d/n` or `x::/n` into a family, prefix and big-integer network. */
function cidrOf(text: string): { family: 4 | 6; bits: bigint; prefix: number; text: string } {
  const [addr, p] = text.split('/');
  const family = isIP(addr!) as 4 | 6;
  return { family, bits: ipBits(addr!), prefix: Number(p), text };
}

function ipBits(ip: string): bigint {
  if (isIP(ip) === 4) return ip.split('.').reduce((n, o) => (n << 8n) + BigInt(o), 0n);
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((n, g) => (n << 16n) + BigInt(parseInt(g as string, 16)), 0n);
}

function bitsToIp(bits: bigint, family: 4 | 6): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((s) => String((bits >> s) & 255n)).join('.');
  const g: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) g.push(((bits >> s) & 0xffffn).toString(16));
  return g.join(':');
}

function contains(c: ReturnType<typeof cidrOf>, ip: string): boolean {
  if (isIP(ip) !== c.family) return false;
  const width = c.family === 4 ? 32 : 128;
  const shift = BigInt(width - c.prefix);
  return ipBits(ip) >> shift === c.bits >> shift;
}

export class KubeApiServer {
  readonly requests: RequestRecord[] = [];
  readonly caPem: string;
  private readonly store = new Map<string, KubeObject>();
  private rv = 100;
  private server!: https.Server;
  private port = 0;
  private readonly hooks: ((r: RequestRecord) => void)[] = [];
  private readonly interferers: {
    key: string;
    times: number;
    change: (o: KubeObject) => void;
  }[] = [];
  private readonly cidrs: ReturnType<typeof cidrOf>[];
  private nextIp = new Map<string, bigint>();

  private constructor(
    private readonly pki: Pki,
    private readonly opts: KubeApiServerOptions,
  ) {
    this.caPem = pki.caPem;
    this.cidrs = (opts.serviceCidrs ?? ['10.96.0.0/12']).map(cidrOf);
  }

  static async start(opts: KubeApiServerOptions = {}): Promise<KubeApiServer> {
    const s = new KubeApiServer(await makePki(), opts);
    if (opts.serveServiceCidrs !== false) {
      // What the API server itself creates from its --service-cluster-ip-range (1.31+).
      s.put('servicecidrs', {
        metadata: { name: 'kubernetes' },
        spec: { cidrs: s.cidrs.map((c) => c.text) },
      });
    }
    await s.listen();
    return s;
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  private async listen(): Promise<void> {
    this.server = https.createServer(
      {
        key: this.pki.serverKeyPem,
        cert: this.pki.serverCertPem,
        ca: this.pki.clientCa.pem,
        requestCert: true,
        rejectUnauthorized: false,
      },
      (req, res) => {
        void this.handle(req, res);
      },
    );
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => {
      this.server.close(() => {
        resolve();
      });
    });
  }

  /** A client certificate for `user` (groups go into O), signed by the client CA. */
  async clientCertificate(
    user: string,
    groups: readonly string[] = [],
  ): Promise<{ certPem: string; keyPem: string }> {
    const subject = [`CN=${user}`, ...groups.map((g) => `O=${g}`)].join(', ');
    return issue(this.pki.clientCa, subject, { client: true });
  }

  /**
   * Writes a kubeconfig for this server into `dir` (mode 0600) and returns its path. The user
   * authenticates with a token, a client certificate, or an exec plugin command.
   */
  kubeconfig(
    dir: string,
    auth:
      | { token: string }
      | { certPem: string; keyPem: string }
      | { exec: { command: string; args: readonly string[] } },
    o: { context?: string; namespace?: string; file?: string; caPem?: string } = {},
  ): string {
    const b64 = (s: string): string => Buffer.from(s).toString('base64');
    const context = o.context ?? 'double';
    let user: string;
    if ('token' in auth) user = `    token: ${auth.token}`;
    else if ('certPem' in auth)
      user = `    client-certificate-data: ${b64(auth.certPem)}\n    client-key-data: ${b64(auth.keyPem)}`;
    else
      user = [
        '    exec:',
        '      apiVersion: client.authentication.k8s.io/v1',
        `      command: ${JSON.stringify(auth.exec.command)}`,
        `      args: ${JSON.stringify(auth.exec.args)}`,
        '      interactiveMode: Never',
      ].join('\n');
    const text = [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      `- name: ${context}-cluster`,
      '  cluster:',
      `    server: ${this.url}`,
      `    certificate-authority-data: ${b64(o.caPem ?? this.caPem)}`,
      'users:',
      `- name: ${context}-user`,
      '  user:',
      user,
      'contexts:',
      `- name: ${context}`,
      '  context:',
      `    cluster: ${context}-cluster`,
      `    user: ${context}-user`,
      ...(o.namespace ? [`    namespace: ${o.namespace}`] : []),
      `current-context: ${context}`,
      '',
    ].join('\n');
    const file = path.join(dir, o.file ?? 'kubeconfig');
    writeFileSync(file, text, { mode: 0o600 });
    return file;
  }

  private key(t: ResourceType, ns: string | undefined, name: string): string {
    return `${t.group}/${t.resource}/${ns ?? ''}/${name}`;
  }

  private typeOf(resource: string): ResourceType {
    const t = TYPES.find((x) => x.resource === resource);
    if (!t) throw new Error(`the double does not serve ${resource}`);
    return t;
  }

  /** Stores `obj` as if created (a new resourceVersion, uid, apiVersion, kind). */
  put(resource: string, obj: KubeObject): KubeObject {
    const t = this.typeOf(resource);
    const stored = this.finish(t, structuredClone(obj), obj.metadata.namespace);
    this.store.set(this.key(t, stored.metadata.namespace, stored.metadata.name), stored);
    return structuredClone(stored);
  }

  object(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const o = this.store.get(this.key(this.typeOf(resource), namespace, name));
    return o ? structuredClone(o) : undefined;
  }

  objects(resource: string, namespace?: string): KubeObject[] {
    const t = this.typeOf(resource);
    return [...this.store.entries()]
      .filter(([k]) => k.startsWith(`${t.group}/${t.resource}/${namespace ?? ''}`))
      .map(([, o]) => structuredClone(o));
  }

  remove(resource: string, namespace: string | undefined, name: string): void {
    this.store.delete(this.key(this.typeOf(resource), namespace, name));
  }

  /** Sets a Service's load-balancer ingress (as a cloud controller would). */
  setLoadBalancer(
    namespace: string,
    name: string,
    ingress: readonly ({ ip: string } | { hostname: string })[],
  ): void {
    const k = this.key(this.typeOf('services'), namespace, name);
    const o = this.store.get(k);
    if (!o) throw new Error(`no Service ${namespace}/${name}`);
    o.status = { loadBalancer: { ingress } };
    o.metadata.resourceVersion = String(++this.rv);
  }

  /**
   * A concurrent writer: the next `times` updates of the object first see `change` applied to
   * it by "someone else" (with a new resourceVersion), so they meet a 409.
   */
  interfere(
    resource: string,
    namespace: string | undefined,
    name: string,
    change: (o: KubeObject) => void,
    times = 1,
  ): void {
    this.interferers.push({
      key: this.key(this.typeOf(resource), namespace, name),
      times,
      change,
    });
  }

  onRequest(fn: (r: RequestRecord) => void): void {
    this.hooks.push(fn);
  }

  writes(): RequestRecord[] {
    return this.requests.filter((r) => r.method !== 'GET' && !r.dryRun);
  }

  private finish(t: ResourceType, obj: KubeObject, namespace: string | undefined): KubeObject {
    obj.apiVersion = t.group ? `${t.group}/${t.version}` : t.version;
    obj.kind = t.kind;
    obj.metadata.uid ??= randomUUID();
    obj.metadata.creationTimestamp ??= new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    if (t.namespaced) obj.metadata.namespace = namespace;
    obj.metadata.resourceVersion = String(++this.rv);
    return obj;
  }

  private user(req: IncomingMessage): KubeUser | undefined {
    const sock = req.socket as unknown as TLSSocket;
    const peer = sock.getPeerX509Certificate?.();
    if (peer && sock.authorized) {
      const subject = new X509Certificate(peer.raw).subject;
      const cn = /^CN=(.*)$/m.exec(subject)?.[1];
      const groups = [...subject.matchAll(/^O=(.*)$/gm)].map((m) => m[1]!);
      if (cn) return { name: cn, groups };
    }
    const auth = req.headers.authorization;
    const token = auth?.startsWith('Bearer ') ? auth.slice(7).trim() : undefined;
    if (token !== undefined) return this.opts.tokens?.[token];
    return undefined;
  }

  private allowed(
    user: KubeUser,
    verb: string,
    t: ResourceType,
    namespace: string | undefined,
  ): boolean {
    const rules = this.opts.rules?.[user.name];
    if (rules === undefined) return true;
    return rules.some(
      (r) =>
        (r.verbs.includes(verb) || r.verbs.includes('*')) &&
        (r.apiGroups.includes(t.group) || r.apiGroups.includes('*')) &&
        (r.resources.includes(t.resource) || r.resources.includes('*')) &&
        (r.namespaces === undefined ||
          (namespace !== undefined && r.namespaces.includes(namespace))),
    );
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://x');
    const query = Object.fromEntries(url.searchParams.entries());
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: unknown;
    try {
      body = raw ? (JSON.parse(raw) as unknown) : undefined;
    } catch {
      body = raw;
    }
    const method = req.method ?? 'GET';
    const route = this.route(url.pathname);
    const user = this.user(req);
    const rec: RequestRecord = {
      method,
      path: url.pathname,
      query,
      user: user?.name,
      verb: route ? this.verb(method, route.name) : '',
      resource: route?.type.resource ?? '',
      namespace: route?.namespace,
      name: route?.name ?? (body as KubeObject | undefined)?.metadata?.name,
      dryRun: query.dryRun === 'All',
      status: 0,
      body,
    };
    this.requests.push(rec);
    const send = (status: number, payload: unknown): void => {
      rec.status = status;
      for (const h of this.hooks) h(rec);
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(payload));
    };
    try {
      if (!user) throw new HttpError(401, 'Unauthorized', 'Unauthorized');
      if (!route) {
        rec.status = 404;
        for (const h of this.hooks) h(rec);
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('404 page not found\n');
        return;
      }
      if (!this.allowed(user, rec.verb, route.type, route.namespace)) {
        throw this.forbidden(user, rec.verb, route.type, route.namespace, route.name);
      }
      const [status, out] = this.serve(method, route, body, rec.dryRun, query);
      send(status, out);
    } catch (e) {
      if (e instanceof HttpError) {
        send(e.status, {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Failure',
          message: e.message,
          reason: e.reason,
          details: e.details,
          code: e.status,
        });
      } else {
        send(500, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: String(e) });
      }
    }
  }

  private route(
    p: string,
  ): { type: ResourceType; namespace: string | undefined; name: string | undefined } | undefined {
    let m = /^\/api\/v1\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?$/.exec(p);
    if (m) {
      const type = TYPES.find((t) => t.group === '' && t.resource === m![2]);
      return type ? { type, namespace: m[1], name: m[3] } : undefined;
    }
    m = /^\/apis\/([^/]+)\/([^/]+)\/namespaces\/([^/]+)\/([^/]+)(?:\/([^/]+))?$/.exec(p);
    if (m) {
      const type = TYPES.find(
        (t) => t.group === m![1] && t.version === m![2] && t.resource === m![4] && t.namespaced,
      );
      return type ? { type, namespace: m[3], name: m[5] } : undefined;
    }
    m = /^\/apis\/([^/]+)\/([^/]+)\/([^/]+)(?:\/([^/]+))?$/.exec(p);
    if (m) {
      const type = TYPES.find(
        (t) => t.group === m[1] && t.version === m[2] && t.resource === m[3] && !t.namespaced,
      );
      if (type?.resource === 'servicecidrs' && this.opts.serveServiceCidrs === false)
        return undefined;
      return type ? { type, namespace: undefined, name: m[4] } : undefined;
    }
    return undefined;
  }

  private verb(method: string, name: string | undefined): string {
    switch (method) {
      case 'GET':
        return name === undefined ? 'list' : 'get';
      case 'POST':
        return 'create';
      case 'PUT':
        return 'update';
      case 'DELETE':
        return 'delete';
      case 'PATCH':
        return 'patch';
      default:
        return method.toLowerCase();
    }
  }

  private forbidden(
    user: KubeUser,
    verb: string,
    t: ResourceType,
    namespace: string | undefined,
    name: string | undefined,
  ): HttpError {
    const res = t.group ? `${t.resource}.${t.group}` : t.resource;
    const obj = name !== undefined ? `${res} "${name}"` : res;
    const scope =
      namespace !== undefined ? `in the namespace "${namespace}"` : 'at the cluster scope';
    return new HttpError(
      403,
      'Forbidden',
      `${obj} is forbidden: User "${user.name}" cannot ${verb} resource "${t.resource}" in API group "${t.group}" ${scope}`,
      { ...(name !== undefined ? { name } : {}), group: t.group, kind: t.resource },
    );
  }

  private notFound(t: ResourceType, name: string): HttpError {
    const res = t.group ? `${t.resource}.${t.group}` : t.resource;
    return new HttpError(404, 'NotFound', `${res} "${name}" not found`, {
      name,
      group: t.group,
      kind: t.resource,
    });
  }

  private serve(
    method: string,
    route: { type: ResourceType; namespace: string | undefined; name: string | undefined },
    body: unknown,
    dryRun: boolean,
    query: Record<string, string>,
  ): [number, unknown] {
    const { type: t, namespace: ns, name } = route;
    const res = t.group ? `${t.resource}.${t.group}` : t.resource;
    if (method === 'GET' && name === undefined) {
      const want = (query.labelSelector ?? '')
        .split(',')
        .filter((s) => s !== '')
        .map((s) => s.split('='));
      const items = [...this.store.entries()]
        .filter(([k]) => k.startsWith(`${t.group}/${t.resource}/${ns ?? ''}/`))
        .map(([, o]) => o)
        .filter((o) => want.every(([k, v]) => o.metadata.labels?.[k!] === v));
      return [
        200,
        {
          kind: `${t.kind}List`,
          apiVersion: t.group ? `${t.group}/${t.version}` : t.version,
          metadata: { resourceVersion: String(this.rv) },
          items,
        },
      ];
    }
    if (method === 'GET') {
      const o = this.store.get(this.key(t, ns, name!));
      if (!o) throw this.notFound(t, name!);
      return [200, o];
    }
    if (t.resource === 'servicecidrs') {
      throw new HttpError(405, 'MethodNotAllowed', 'the double serves servicecidrs read-only');
    }
    if (method === 'DELETE') {
      const k = this.key(t, ns, name!);
      if (!this.store.has(k)) throw this.notFound(t, name!);
      if (!dryRun) this.store.delete(k);
      return [200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success' }];
    }
    if (typeof body !== 'object' || body === null) {
      throw new HttpError(400, 'BadRequest', 'the request body is not a JSON object');
    }
    const obj = structuredClone(body) as KubeObject;
    obj.metadata ??= { name: '' };
    if (!obj.metadata.name && obj.metadata.generateName && method === 'POST') {
      obj.metadata.name = obj.metadata.generateName + randomBytes(3).toString('hex').slice(0, 5);
    }
    if (!obj.metadata.name) {
      throw new HttpError(422, 'Invalid', `${t.kind} "" is invalid: metadata.name: Required value`);
    }
    if (method === 'POST') {
      const k = this.key(t, ns, obj.metadata.name);
      if (this.store.has(k)) {
        throw new HttpError(409, 'AlreadyExists', `${res} "${obj.metadata.name}" already exists`, {
          name: obj.metadata.name,
          group: t.group,
          kind: t.resource,
        });
      }
      delete obj.metadata.resourceVersion;
      if (t.resource === 'services') this.allocate(obj, dryRun);
      if (t.resource === 'services') obj.status = { loadBalancer: {} };
      const out = this.finish(t, obj, ns);
      if (dryRun) {
        this.rv--; // nothing was stored
        delete out.metadata.resourceVersion;
        return [201, out];
      }
      this.store.set(k, out);
      return [201, out];
    }
    if (method === 'PUT') {
      if (obj.metadata.name !== name) {
        throw new HttpError(
          400,
          'BadRequest',
          `the name of the object (${obj.metadata.name}) does not match the name on the URL (${name})`,
        );
      }
      const k = this.key(t, ns, name);
      const cur = this.store.get(k);
      if (!cur) throw this.notFound(t, name);
      for (const i of this.interferers) {
        if (i.key === k && i.times > 0) {
          i.times--;
          i.change(cur);
          cur.metadata.resourceVersion = String(++this.rv);
        }
      }
      if (!obj.metadata.resourceVersion) {
        throw new HttpError(
          422,
          'Invalid',
          `${t.kind} "${name}" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update`,
        );
      }
      if (obj.metadata.resourceVersion !== cur.metadata.resourceVersion) {
        throw new HttpError(
          409,
          'Conflict',
          `Operation cannot be fulfilled on ${res} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
          { name, group: t.group, kind: t.resource },
        );
      }
      if (t.resource === 'services') {
        const want = (obj.spec as { clusterIP?: string } | undefined)?.clusterIP;
        const have = (cur.spec as { clusterIP?: string } | undefined)?.clusterIP;
        if (want !== undefined && want !== '' && want !== have) {
          throw new HttpError(
            422,
            'Invalid',
            `Service "${name}" is invalid: spec.clusterIPs[0]: Invalid value: []string{"${want}"}: may not change once set`,
          );
        }
        obj.spec = { ...(obj.spec as object), clusterIP: have, clusterIPs: [have] };
        obj.status = cur.status;
      }
      obj.metadata.uid = cur.metadata.uid;
      obj.metadata.creationTimestamp = cur.metadata.creationTimestamp;
      const out = this.finish(t, obj, ns);
      if (dryRun) {
        this.rv--;
        return [
          200,
          { ...out, metadata: { ...out.metadata, resourceVersion: cur.metadata.resourceVersion } },
        ];
      }
      this.store.set(k, out);
      return [200, out];
    }
    throw new HttpError(405, 'MethodNotAllowed', `the double does not implement ${method}`);
  }

  /** The cluster-IP allocator's checks, with the real server's messages. */
  private allocate(svc: KubeObject, dryRun: boolean): void {
    const spec = (svc.spec ??= {}) as {
      clusterIP?: string;
      clusterIPs?: string[];
      ipFamilies?: string[];
      type?: string;
    };
    const name = svc.metadata.name;
    const asked = spec.clusterIP ?? spec.clusterIPs?.[0];
    if (asked === 'None') return;
    if (asked !== undefined && asked !== '') {
      const family = isIP(asked);
      if (family === 0) {
        throw new HttpError(
          422,
          'Invalid',
          `Service "${name}" is invalid: spec.clusterIPs[0]: Invalid value: "${asked}": must be a valid IP address`,
        );
      }
      const ranges = this.cidrs.filter((c) => c.family === family);
      if (ranges.length === 0) {
        const fam = family === 6 ? 'IPv6' : 'IPv4';
        throw new HttpError(
          422,
          'Invalid',
          `Service "${name}" is invalid: spec.ipFamilies[0]: Invalid value: "${fam}": not configured on this cluster`,
          {
            name,
            kind: 'Service',
            causes: [
              {
                reason: 'FieldValueInvalid',
                message: `Invalid value: "${fam}": not configured on this cluster`,
                field: 'spec.ipFamilies[0]',
              },
            ],
          },
        );
      }
      if (!ranges.some((c) => contains(c, asked))) {
        const valid = ranges.map((c) => c.text).join(' ');
        const msg = `Invalid value: []string{"${asked}"}: failed to allocate IP ${asked}: the provided IP (${asked}) is not in the valid range. The range of valid IPs is ${valid}`;
        throw new HttpError(
          422,
          'Invalid',
          `Service "${name}" is invalid: spec.clusterIPs: ${msg}`,
          {
            name,
            kind: 'Service',
            causes: [{ reason: 'FieldValueInvalid', message: msg, field: 'spec.clusterIPs' }],
          },
        );
      }
      spec.clusterIPs = [asked];
      return;
    }
    const range = this.cidrs[0]!;
    const next = this.nextIp.get(range.text) ?? range.bits + 10n;
    if (!dryRun) this.nextIp.set(range.text, next + 1n);
    spec.clusterIP = bitsToIp(next, range.family);
    spec.clusterIPs = [spec.clusterIP];
  }
}
