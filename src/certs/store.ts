import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { atomicSymlink, atomicWrite, writeNewFile } from '../lib/atomic-write';
import { systemClock, type Clock } from '../lib/clock';
import { AgentError } from '../lib/errors';
import { ensureDir, fsyncDir, readFileSafe, resolveTrusted, trustedUids } from '../lib/safe-fs';

export const KEY_FILE = 'key.pem';
export const CHAIN_FILE = 'cert-chain.pem';
export const ROOT_FILE = 'root-cert.pem';
export const SET_FILES = [KEY_FILE, CHAIN_FILE, ROOT_FILE] as const;
const DATA = '..data';
const BOOTSTRAP = '..bootstrap';
const META = 'meta.json';
/** A generation directory's name: `..2026_11_26_08_50_00.123_9f2c`. */
const GENERATION = /^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d{3}_[0-9a-f]{4}$/;
/** A PEM file or meta.json larger than this is not one: 64 KiB holds a chain of dozens. */
export const MAX_PEM_BYTES = 64 * 1024;

export interface CertSet {
  readonly keyPem: string;
  readonly chainPem: string;
  readonly rootPem: string;
}

export interface SetMeta {
  /** Who made this set: the agent (CSR to the CA) or someone else (a bootstrap set dropped by hand). */
  readonly issuer: 'agent' | 'bootstrap';
  readonly identity?: string;
  readonly notBefore?: number;
  readonly notAfter?: number;
  readonly serial?: string;
  /**
   * Where its renewal was drawn, as a share of CERT_RENEW_RATIO × lifetime (certs/policy.ts),
   * so a restart renews at the same point.
   */
  readonly renewShare?: number;
}

export interface StoredSet extends Partial<CertSet> {
  readonly generation: string | undefined;
  readonly meta: SetMeta;
}

export interface StoreOptions {
  /** Owner of key.pem (the proxy user) when running as root. */
  readonly keyOwner?: { readonly uid: number; readonly gid: number };
  /** Names the generations (their time stamp); default the system clock. */
  readonly clock?: Pick<Clock, 'now'>;
}

/** What prepare() found worth a warning about the files dropped by hand. */
export interface TakeoverNote {
  readonly file: string;
  readonly message: string;
}

/**
 * The certificate set on disk, replaced as one unit the way Kubernetes updates mounted secrets:
 *
 *   CERTS_DIR/..2026_11_26_08_50_00.123_9f2c/{key.pem,cert-chain.pem,root-cert.pem,meta.json}
 *   CERTS_DIR/..data -> ..2026_11_26_08_50_00.123_9f2c
 *   CERTS_DIR/key.pem -> ..data/key.pem   (likewise cert-chain.pem, root-cert.pem)
 *
 * A new generation is written complete and fsynced in a temporary directory, renamed into
 * place, and published by one atomic rename of the `..data` symlink. A crash at any instant
 * leaves `..data` pointing at a complete set. Plain files dropped by hand (Istio 1.0's bootstrap
 * flow) are taken over as a generation, and kept in `..bootstrap` so they are never lost.
 */
export class CertStore {
  /** Warnings about the files taken over by the last prepare(). */
  notes: TakeoverNote[] = [];

  constructor(
    readonly dir: string,
    private readonly options: StoreOptions = {},
  ) {}

  /**
   * Reads the current set: the files of the generation `..data` names, each opened without
   * following a symlink; before any generation exists, the plain files. Missing files are
   * undefined.
   */
  async read(): Promise<StoredSet> {
    const generation = await this.currentGeneration();
    const base = generation === undefined ? this.dir : path.join(this.dir, generation);
    const [keyPem, chainPem, rootPem] = await Promise.all(
      SET_FILES.map((f) => readPem(path.join(base, f))),
    );
    let meta: SetMeta = { issuer: 'bootstrap' };
    if (generation !== undefined) {
      const m = await readPem(path.join(base, META));
      if (m !== undefined) {
        try {
          meta = JSON.parse(m) as SetMeta;
        } catch {
          /* a damaged meta file means we do not know who issued the set: treat as bootstrap */
        }
      }
    }
    return { keyPem, chainPem, rootPem, generation, meta };
  }

  /** The bootstrap set kept at takeover, if any. */
  async readBootstrap(): Promise<Partial<CertSet>> {
    const dir = path.join(this.dir, BOOTSTRAP);
    const st = await lstatIfExists(dir);
    if (!st) return {};
    this.checkOwnDir(dir, st, 0o700);
    const [keyPem, chainPem, rootPem] = await Promise.all(
      SET_FILES.map((f) => readPem(path.join(dir, f))),
    );
    return { keyPem, chainPem, rootPem };
  }

  /** The generation `..data` points at; undefined before the first one. */
  async currentGeneration(): Promise<string | undefined> {
    const p = path.join(this.dir, DATA);
    const st = await lstatIfExists(p);
    if (!st) return undefined;
    const target = st.isSymbolicLink() ? await fs.readlink(p) : '';
    if (!GENERATION.test(target)) {
      throw new AgentError(
        'AGENT_E_CERT_STORE',
        `${p} is not the agent's link to a certificate generation; remove it and restart the agent`,
      );
    }
    return target;
  }

  /**
   * Checks, without changing anything, that CERTS_DIR (or, while it does not exist, the
   * directories above it) can be changed by no one but root: the agent's preflight.
   */
  async check(): Promise<void> {
    const r = await resolveTrusted(this.dir);
    if (r.stat && !r.stat.isDirectory()) {
      throw new AgentError('AGENT_E_UNSAFE_PATH', `${this.dir} is not a directory; fix CERTS_DIR`);
    }
  }

  /**
   * Prepares the directory: makes it (0755, owned by root) or checks that no one but root can
   * change it or the path to it, removes leftovers of an interrupted write, and takes over plain
   * files dropped by hand (first start, or an operator re-provisioning a bootstrap set). Returns
   * true when files were taken over.
   */
  async prepare(): Promise<boolean> {
    await ensureDir(this.dir, 0o755);
    this.notes = [];
    const current = await this.currentGeneration();
    const plain: Record<string, string> = {};
    for (const f of SET_FILES) {
      const p = path.join(this.dir, f);
      const st = await lstatIfExists(p);
      if (!st) continue;
      if (st.isSymbolicLink()) {
        const target = await fs.readlink(p);
        if (target === `${DATA}/${f}`) continue;
        throw new AgentError(
          'AGENT_E_BOOTSTRAP_INVALID',
          `${p} is a symlink to ${target}; the agent does not follow symlinks in ${this.dir}: put the file itself there`,
        );
      }
      const r = await readFileSafe(p, { maxBytes: MAX_PEM_BYTES });
      if (!r) continue;
      plain[f] = r.data.toString('utf8');
      if (f === KEY_FILE) this.noteKey(p, r.stat);
    }
    let took = false;
    if (Object.keys(plain).length > 0) {
      const inData: Record<string, string | undefined> = {};
      if (current !== undefined)
        for (const f of SET_FILES) inData[f] = await readPem(path.join(this.dir, current, f));
      const differs = Object.entries(plain).some(([f, text]) => inData[f] !== text);
      if (differs) {
        // New files by hand: they become the current set (with the rest from the current one).
        const set = {
          keyPem: plain[KEY_FILE] ?? inData[KEY_FILE] ?? '',
          chainPem: plain[CHAIN_FILE] ?? inData[CHAIN_FILE] ?? '',
          rootPem: plain[ROOT_FILE] ?? inData[ROOT_FILE] ?? '',
        };
        await this.saveBootstrap(plain);
        await this.write(set, { issuer: 'bootstrap' }, { partial: true });
        took = true;
      }
      await this.linkNames();
    }
    await this.removeStale();
    return took;
  }

  /** Publishes a new complete set; returns its generation name. */
  async write(set: CertSet, meta: SetMeta, opts: { partial?: boolean } = {}): Promise<string> {
    const tmp = path.join(this.dir, `..tmp-${randomBytes(4).toString('hex')}`);
    const now = (this.options.clock ?? systemClock).now();
    const gen = `..${generationStamp(new Date(now))}_${randomBytes(2).toString('hex')}`;
    try {
      // mkdir fails if the name exists, so the directory is ours; so is every file in it.
      await fs.mkdir(tmp, { mode: 0o755 });
      await fs.chmod(tmp, 0o755);
      const files: [string, string, number][] = [
        [KEY_FILE, set.keyPem, 0o600],
        [CHAIN_FILE, set.chainPem, 0o644],
        [ROOT_FILE, set.rootPem, 0o644],
        [META, JSON.stringify(meta) + '\n', 0o644],
      ];
      // Written and fsynced together: the disk flushes them at once rather than one by one
      // (bench/start-profile.ts measures the difference). All must settle before the directory
      // is removed on failure.
      const writes = await Promise.allSettled(
        files
          .filter(([name, text]) => !(opts.partial && text === '' && name !== META))
          .map(([name, text, mode]) => {
            const owner = name === KEY_FILE ? this.options.keyOwner : undefined;
            return writeNewFile(path.join(tmp, name), text, { mode, ...owner });
          }),
      );
      for (const w of writes) if (w.status === 'rejected') throw w.reason;
      await fsyncDir(tmp);
      await fs.rename(tmp, path.join(this.dir, gen));
      // Published by one rename of the ..data link (then this.dir fsynced).
      await atomicSymlink(gen, path.join(this.dir, DATA), {
        tmp: path.join(this.dir, `..data_tmp_${randomBytes(3).toString('hex')}`),
      });
    } catch (e) {
      await fs.rm(tmp, { recursive: true, force: true });
      throw new AgentError(
        'AGENT_E_CERT_STORE',
        `cannot write the certificate set in ${this.dir}: ${(e as Error).message}`,
        { cause: e },
      );
    }
    await this.linkNames();
    await this.removeStale(gen);
    return gen;
  }

  /**
   * Makes key.pem, cert-chain.pem and root-cert.pem symlinks into ..data (atomically each), then
   * fsyncs the directory if one changed (after the first generation, none does).
   */
  private async linkNames(): Promise<void> {
    const changed = await Promise.all(
      SET_FILES.map(async (f) => {
        const p = path.join(this.dir, f);
        const target = `${DATA}/${f}`;
        const st = await lstatIfExists(p);
        if (st?.isSymbolicLink() && (await fs.readlink(p)) === target) return false;
        await atomicSymlink(target, p, { durable: false });
        return true;
      }),
    );
    if (changed.includes(true)) await fsyncDir(this.dir);
  }

  /** Keeps the files taken over in `..bootstrap` (0700), a directory only the agent uses. */
  private async saveBootstrap(plain: Record<string, string>): Promise<void> {
    const dir = path.join(this.dir, BOOTSTRAP);
    const st = await lstatIfExists(dir);
    if (st) this.checkOwnDir(dir, st, 0o700);
    else await ensureDir(dir, 0o700);
    await Promise.all(
      Object.entries(plain).map(([f, text]) =>
        atomicWrite(path.join(dir, f), text, { mode: f === KEY_FILE ? 0o600 : 0o644 }),
      ),
    );
  }

  /** A directory of the agent's inside CERTS_DIR must be a real one, owned by it. */
  private checkOwnDir(dir: string, st: import('node:fs').Stats, mode: number): void {
    if (!st.isDirectory() || !trustedUids().includes(st.uid) || (st.mode & 0o022) !== 0) {
      throw new AgentError(
        'AGENT_E_CERT_STORE',
        `${dir} is not the agent's directory (${st.isSymbolicLink() ? 'a symlink' : `owner uid ${st.uid}, mode ${(st.mode & 0o7777).toString(8)}`}); remove it and restart the agent, which makes it again (mode ${mode.toString(8)})`,
      );
    }
  }

  /** Warns about a bootstrap key others could read or change before the agent took it over. */
  private noteKey(p: string, st: import('node:fs').Stats): void {
    if ((st.mode & 0o077) !== 0) {
      this.notes.push({
        file: p,
        message: `${p} was readable by others (mode ${(st.mode & 0o7777).toString(8)}); the agent's copy is 0600, but treat the key as exposed and rotate the bootstrap secret`,
      });
    }
    if (!trustedUids().includes(st.uid)) {
      this.notes.push({
        file: p,
        message: `${p} was owned by uid ${st.uid}, who could change the bootstrap identity; provision bootstrap files owned by root`,
      });
    }
  }

  /** Removes interrupted writes and generations no longer published (`current`, if known). */
  private async removeStale(published?: string): Promise<void> {
    const current = published ?? (await this.currentGeneration());
    for (const name of await fs.readdir(this.dir)) {
      const stale =
        name.startsWith('..tmp-') ||
        name.startsWith('..data_tmp_') ||
        (GENERATION.test(name) && name !== current) ||
        /^\.(key|cert-chain|root-cert)\.pem\.[0-9a-f]+\.lnk$/.test(name);
      if (stale) await fs.rm(path.join(this.dir, name), { recursive: true, force: true });
    }
  }
}

function generationStamp(d: Date): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${d.getUTCFullYear()}_${p(d.getUTCMonth() + 1)}_${p(d.getUTCDate())}_${p(d.getUTCHours())}_${p(d.getUTCMinutes())}_${p(d.getUTCSeconds())}.${p(d.getUTCMilliseconds(), 3)}`;
}

/** A PEM (or meta.json) file, opened without following a symlink, bounded; undefined if absent. */
async function readPem(p: string): Promise<string | undefined> {
  const r = await readFileSafe(p, { maxBytes: MAX_PEM_BYTES });
  return r?.data.toString('utf8');
}

async function lstatIfExists(p: string): Promise<import('node:fs').Stats | undefined> {
  try {
    return await fs.lstat(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AgentError('AGENT_E_IO', `cannot inspect ${p}: ${(e as Error).message}`, {
      cause: e,
    });
  }
}
