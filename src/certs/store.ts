import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fsyncDir } from '../lib/atomic-write';
import { AgentError } from '../lib/errors';

export const KEY_FILE = 'key.pem';
export const CHAIN_FILE = 'cert-chain.pem';
export const ROOT_FILE = 'root-cert.pem';
export const SET_FILES = [KEY_FILE, CHAIN_FILE, ROOT_FILE] as const;
const DATA = '..data';
const BOOTSTRAP = '..bootstrap';
const META = 'meta.json';

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
}

export interface StoredSet extends Partial<CertSet> {
  readonly generation: string | undefined;
  readonly meta: SetMeta;
}

export interface StoreOptions {
  /** Owner of key.pem (the proxy user) when running as root. */
  readonly keyOwner?: { readonly uid: number; readonly gid: number };
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
  constructor(
    readonly dir: string,
    private readonly options: StoreOptions = {},
  ) {}

  /** Reads the current set through the top-level names; missing files are undefined. */
  async read(): Promise<StoredSet> {
    const [keyPem, chainPem, rootPem] = await Promise.all(
      SET_FILES.map((f) => readIfExists(path.join(this.dir, f))),
    );
    const generation = await this.currentGeneration();
    let meta: SetMeta = { issuer: 'bootstrap' };
    if (generation !== undefined) {
      const m = await readIfExists(path.join(this.dir, generation, META));
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
    const [keyPem, chainPem, rootPem] = await Promise.all(
      SET_FILES.map((f) => readIfExists(path.join(this.dir, BOOTSTRAP, f))),
    );
    return { keyPem, chainPem, rootPem };
  }

  async currentGeneration(): Promise<string | undefined> {
    try {
      return await fs.readlink(path.join(this.dir, DATA));
    } catch {
      return undefined;
    }
  }

  /**
   * Prepares the directory: removes leftovers of an interrupted write, and takes over plain files
   * dropped by hand (first start, or an operator re-provisioning a bootstrap set). Returns true
   * when files were taken over.
   */
  async prepare(): Promise<boolean> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o755 });
    const current = await this.currentGeneration();
    const plain: Record<string, string> = {};
    for (const f of SET_FILES) {
      const p = path.join(this.dir, f);
      const st = await lstatIfExists(p);
      if (st?.isFile()) plain[f] = await fs.readFile(p, 'utf8');
    }
    let took = false;
    if (Object.keys(plain).length > 0) {
      const inData: Record<string, string | undefined> = {};
      if (current !== undefined)
        for (const f of SET_FILES) inData[f] = await readIfExists(path.join(this.dir, DATA, f));
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
    const gen = `..${generationStamp(new Date())}_${randomBytes(2).toString('hex')}`;
    try {
      await fs.mkdir(tmp, { mode: 0o755 });
      await fs.chmod(tmp, 0o755);
      const files: [string, string, number][] = [
        [KEY_FILE, set.keyPem, 0o600],
        [CHAIN_FILE, set.chainPem, 0o644],
        [ROOT_FILE, set.rootPem, 0o644],
        [META, JSON.stringify(meta) + '\n', 0o644],
      ];
      for (const [name, text, mode] of files) {
        if (opts.partial && text === '' && name !== META) continue;
        const fh = await fs.open(path.join(tmp, name), 'wx', mode);
        try {
          await fh.writeFile(text);
          await fh.chmod(mode);
          if (name === KEY_FILE && this.options.keyOwner)
            await fh.chown(this.options.keyOwner.uid, this.options.keyOwner.gid);
          await fh.sync();
        } finally {
          await fh.close();
        }
      }
      await fsyncDir(tmp);
      await fs.rename(tmp, path.join(this.dir, gen));
      const link = path.join(this.dir, `..data_tmp_${randomBytes(3).toString('hex')}`);
      await fs.symlink(gen, link);
      await fs.rename(link, path.join(this.dir, DATA));
      await fsyncDir(this.dir);
    } catch (e) {
      await fs.rm(tmp, { recursive: true, force: true });
      throw new AgentError(
        'AGENT_E_CERT_STORE',
        `cannot write the certificate set in ${this.dir}: ${(e as Error).message}`,
        {
          cause: e,
        },
      );
    }
    await this.linkNames();
    await this.removeStale();
    return gen;
  }

  /** Makes key.pem, cert-chain.pem and root-cert.pem symlinks into ..data (atomically each). */
  private async linkNames(): Promise<void> {
    for (const f of SET_FILES) {
      const p = path.join(this.dir, f);
      const target = `${DATA}/${f}`;
      const st = await lstatIfExists(p);
      if (st?.isSymbolicLink() && (await fs.readlink(p)) === target) continue;
      const tmp = path.join(this.dir, `.${f}.${randomBytes(3).toString('hex')}.lnk`);
      await fs.symlink(target, tmp);
      await fs.rename(tmp, p);
    }
    await fsyncDir(this.dir);
  }

  private async saveBootstrap(plain: Record<string, string>): Promise<void> {
    const dir = path.join(this.dir, BOOTSTRAP);
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    for (const [f, text] of Object.entries(plain)) {
      const mode = f === KEY_FILE ? 0o600 : 0o644;
      const tmp = path.join(dir, `.${f}.tmp`);
      await fs.writeFile(tmp, text, { mode });
      const fh = await fs.open(tmp, 'r');
      await fh.sync();
      await fh.close();
      await fs.rename(tmp, path.join(dir, f));
    }
    await fsyncDir(dir);
  }

  /** Removes interrupted writes and generations no longer published. */
  private async removeStale(): Promise<void> {
    const current = await this.currentGeneration();
    for (const name of await fs.readdir(this.dir)) {
      const stale =
        name.startsWith('..tmp-') ||
        name.startsWith('..data_tmp_') ||
        (/^\.\.\d{4}_/.test(name) && name !== current) ||
        /^\.(key|cert-chain|root-cert)\.pem\.[0-9a-f]+\.lnk$/.test(name);
      if (stale) await fs.rm(path.join(this.dir, name), { recursive: true, force: true });
    }
  }
}

function generationStamp(d: Date): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${d.getUTCFullYear()}_${p(d.getUTCMonth() + 1)}_${p(d.getUTCDate())}_${p(d.getUTCHours())}_${p(d.getUTCMinutes())}_${p(d.getUTCSeconds())}.${p(d.getUTCMilliseconds(), 3)}`;
}

async function readIfExists(p: string): Promise<string | undefined> {
  try {
    return await fs.readFile(p, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AgentError('AGENT_E_IO', `cannot read ${p}: ${(e as Error).message}`, { cause: e });
  }
}

async function lstatIfExists(p: string): Promise<import('node:fs').Stats | undefined> {
  try {
    return await fs.lstat(p);
  } catch {
    return undefined;
  }
}
