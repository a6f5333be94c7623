// A CertManager on a FakeClock with everything around it in memory: the certificate set, the
// CA (signing with a test PKI), the identity source. For the manager's decisions and their
// timing (deadlines, retries, stop) without real time; the real gRPC path is in
// test/integration/certs.test.ts.
import { randomBytes } from 'node:crypto';
import { CertManager } from '../../src/certs/manager';
import { generateWorkloadKey, type WorkloadKey } from '../../src/certs/keys';
import type { CertSet, SetMeta, StoredSet } from '../../src/certs/store';
import type { CaCredential, CsrRequest } from '../../src/ca/index';
import type { CaClientLike, CaConnector, CaTarget } from '../../src/certs/types';
import type { AgentConfig, KeyAlgorithm } from '../../src/config/types';
import { onpremIdentity, type IdentitySource } from '../../src/identity/index';
import type { Random } from '../../src/lib/backoff';
import { FakeClock } from '../../src/lib/clock';
import { x509 } from '../../src/lib/x509';
import { until } from './certs';
import { makeLeaf, makeRoot, type TestCa } from './pki';
import { testConfig } from './config';
import { testDeps, type LogRecord } from './deps';

export const ID = 'spiffe://cluster.local/ns/default/sa/vm';
export const HOUR = 3_600_000;

export type { LogRecord };

/** The cert set in memory. `onRead`/`onWrite` run first in every read/write: throw or hang there. */
export class MemoryStore {
  readonly dir = '/memory/certs';
  set: Partial<CertSet> & { meta: SetMeta; generation: string | undefined } = {
    meta: { issuer: 'bootstrap' },
    generation: undefined,
  };
  bootstrap: Partial<CertSet> = {};
  writes = 0;
  onRead: (() => Promise<void> | void) | undefined;
  onWrite: ((set: CertSet) => Promise<void> | void) | undefined;
  readonly notes: { file: string; message: string }[] = [];

  check(): Promise<void> {
    return Promise.resolve();
  }

  prepare(): Promise<boolean> {
    return Promise.resolve(false);
  }

  async read(): Promise<StoredSet> {
    await this.onRead?.();
    return { ...this.set };
  }

  async readBootstrap(): Promise<Partial<CertSet>> {
    await this.onRead?.();
    return { ...this.bootstrap };
  }

  async write(set: CertSet, meta: SetMeta): Promise<string> {
    await this.onWrite?.(set);
    this.writes++;
    const generation = `..gen-${this.writes}`;
    this.set = { ...set, meta, generation };
    return generation;
  }
}

export interface CaCall {
  readonly target: CaTarget;
  readonly credential: CaCredential['kind'];
  readonly req: CsrRequest;
  readonly at: number;
}

export type CaBehaviour =
  /** Sign: a leaf for the CSR's key, valid for the TTL asked (at most `lifetimeMs`). */
  | 'issue'
  /** Never answer, and ignore the abort signal too (the worst case of a stuck call). */
  | 'hang'
  | Error;

/** A CA in memory: records each call, answers per `next` (default: issue). */
export class FakeCa {
  readonly calls: CaCall[] = [];
  lifetimeMs = HOUR;
  next: (call: CaCall) => CaBehaviour = () => 'issue';

  constructor(
    readonly root: TestCa,
    private readonly clock: FakeClock,
  ) {}

  readonly connect: CaConnector = (credential, _rootPem, target) => {
    const client: CaClientLike = {
      sign: async (req) => {
        const call: CaCall = { target, credential: credential.kind, req, at: this.clock.now() };
        this.calls.push(call);
        const b = this.next(call);
        if (b === 'hang') return new Promise<string[]>(() => undefined);
        if (b instanceof Error) throw b;
        return [await this.issue(req)];
      },
      close: () => undefined,
    };
    return Promise.resolve(client);
  };

  private async issue(req: CsrRequest): Promise<string> {
    const csr = new x509.Pkcs10CertificateRequest(req.csrPem);
    const now = this.clock.now();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomBytes(8).toString('hex'),
      subject: 'O=',
      issuer: this.root.cert.subject,
      notBefore: new Date(now),
      notAfter: new Date(now + Math.min(req.ttlMs, this.lifetimeMs)),
      publicKey: csr.publicKey,
      signingKey: this.root.keys.privateKey,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: req.identity }]),
      ],
    });
    return cert.toString('pem') + '\n';
  }
}

export interface Harness {
  readonly clock: FakeClock;
  readonly mgr: CertManager;
  readonly store: MemoryStore;
  readonly ca: FakeCa;
  readonly records: LogRecord[];
  readonly fatals: Error[];
  readonly rotations: { generation: string; notAfter: number }[];
  readonly keygens: { algorithm: KeyAlgorithm; bits: number }[];
  readonly config: AgentConfig;
  /** The harness's configuration with some variables changed (for reload). */
  configWith(vars: Record<string, string>): AgentConfig;
  /** Waits (in real time) until no CSR round is in flight, so the fake clock can move on. */
  settle(): Promise<void>;
  /** Moves the fake clock to `at`, one timer at a time, letting each CSR round finish. */
  runUntil(at: number): Promise<void>;
  /** Log records at warn or above whose message matches. */
  logged(re: RegExp): LogRecord[];
  /** Waits (in real time) until every key asked for so far is made (or failed). */
  keysReady(): Promise<void>;
}

export interface HarnessOptions {
  /** Configuration variables; CERT_FIRST_CSR_JITTER defaults to 0 here. */
  readonly vars?: Record<string, string>;
  /** onprem (the default): a bootstrap set valid for this long from now; 0 = expired. */
  readonly bootstrapValidMs?: number;
  /** A different identity source (e.g. gcp). */
  readonly source?: (h: { clock: FakeClock }) => IdentitySource;
  /** Put a bootstrap set in place; default: only with the onprem source. */
  readonly bootstrap?: boolean;
  readonly random?: Random;
}

export async function harness(o: HarnessOptions = {}): Promise<Harness> {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const root = await makeRoot('CN=test root', clock.now());
  const ca = new FakeCa(root, clock);
  const store = new MemoryStore();
  const baseVars = {
    CITADEL_ADDRESS: 'ca.test:8060',
    CERTS_DIR: store.dir,
    WORKLOAD_KEY_ALGORITHM: 'ECDSA',
    CERT_FIRST_CSR_JITTER: '0',
    ISTIO_CAPTURE: 'false',
    SIDECAR_MODE: 'none',
    ...o.vars,
  };
  const config = testConfig(baseVars);
  store.set = { rootPem: root.certPem, meta: { issuer: 'bootstrap' }, generation: undefined };
  if (o.bootstrap ?? !o.source) {
    const valid = o.bootstrapValidMs ?? 100 * HOUR;
    const boot = await makeLeaf(root, {
      sans: [{ type: 'url', value: ID }],
      notBefore: clock.now() - HOUR,
      notAfter: clock.now() + valid,
    });
    store.set = { ...store.set, keyPem: boot.key.pem, chainPem: boot.certPem };
    store.bootstrap = { keyPem: boot.key.pem, chainPem: boot.certPem, rootPem: root.certPem };
  }
  const deps = testDeps({ clock, random: o.random ?? (() => 0.5) });
  const { records, fatals, rotations } = deps;
  const keygens: { algorithm: KeyAlgorithm; bits: number }[] = [];
  const keys: Promise<WorkloadKey>[] = [];
  const keygen = (algorithm: KeyAlgorithm, bits: number): Promise<WorkloadKey> => {
    keygens.push({ algorithm, bits });
    const key = generateWorkloadKey(algorithm, bits);
    keys.push(key);
    return key;
  };
  const mgr = new CertManager(deps, {
    ca: config.ca,
    store,
    connect: ca.connect,
    source: o.source ? o.source({ clock }) : onpremIdentity(`${store.dir}/cert-chain.pem`),
    keygen,
  });
  const renewing = (): boolean => mgr.status().details?.renewing === true;
  const settle = (): Promise<void> => until(() => !renewing(), 20_000, 'the CSR round to finish');
  return {
    clock,
    mgr,
    store,
    ca,
    records,
    fatals,
    rotations,
    keygens,
    config,
    configWith: (vars) => testConfig({ ...baseVars, ...vars }),
    settle,
    async runUntil(at) {
      for (;;) {
        await settle();
        const next = clock.nextAt();
        if (next === undefined || next > at) break;
        await clock.advance(Math.max(0, next - clock.now()));
      }
      if (at > clock.now()) await clock.advance(at - clock.now());
      await settle();
    },
    logged(re) {
      return records.filter((r) => (r.level === 'warn' || r.level === 'error') && re.test(r.msg));
    },
    async keysReady() {
      await Promise.allSettled(keys);
    },
  };
}

/** A promise that never settles: a read of a FIFO nobody writes to. */
export function never(): Promise<never> {
  return new Promise<never>(() => undefined);
}
