// The agent as an attacker on the host would try it: the sidecar user (`nobody` here, standing in
// for istio-proxy) owns or plants files in the configuration, the certificate directory and the
// sidecar's binary directory. `istio-node-agent run` must refuse with exit 78 (or keep running),
// never run the attacker's binary as root, never write outside, never copy a secret in, never hang.
import t, { type Test } from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import { startDevCa, type DevCa } from '../../src/ca/index';
import { requireRoot } from '../helpers/root';
import { tmpDir } from '../helpers/tmp';

const MAIN = path.join(__dirname, '../../src/main.ts');
const ID = 'spiffe://cluster.local/ns/default/sa/vm';
const NOBODY = 65534;
/** A start that refuses must do so quickly; this only catches a hang. */
const HANG_MS = 60_000;

interface Host {
  readonly work: string;
  readonly conf: string;
  readonly certs: string;
  readonly state: string;
  /** Where a planted program leaves its marks: writable by everyone, like /tmp. */
  readonly marks: string;
  readonly bin: string;
}

if (requireRoot(t, 'the trust-boundary tests (chown to another user)')) {
  let ca: DevCa;
  let boot: { certChainPem: string; keyPem: string; rootPem: string };
  t.before(async () => {
    ca = await startDevCa({ ttlMs: 3600_000 });
    boot = await ca.issueBootstrap(ID, 3600_000);
  });
  t.teardown(() => ca.stop());

  function host(t: Test): Host {
    const work = tmpDir(t, 'trust-', { mode: 0o700 });
    chmodSync(work, 0o755);
    const h: Host = {
      work,
      conf: path.join(work, 'envoy'),
      certs: path.join(work, 'certs'),
      state: path.join(work, 'state'),
      marks: path.join(work, 'marks'),
      bin: path.join(work, 'bin'),
    };
    for (const d of [h.conf, h.certs, h.bin]) mkdirSync(d, { mode: 0o755 });
    mkdirSync(h.marks);
    chmodSync(h.marks, 0o1777);
    writeFileSync(path.join(h.certs, 'cert-chain.pem'), boot.certChainPem);
    writeFileSync(path.join(h.certs, 'key.pem'), boot.keyPem, { mode: 0o600 });
    writeFileSync(path.join(h.certs, 'root-cert.pem'), boot.rootPem);
    writeFileSync(path.join(h.conf, 'cluster.env'), `CITADEL_ADDRESS=${ca.address}\n`);
    // Named by ISTIO_SIDECAR_CONFIG below, so it must exist (empty: nothing to add).
    writeFileSync(path.join(h.conf, 'sidecar.env'), '');
    return h;
  }

  /** A program that records who ran it and with what, then behaves like `envoy --version`. */
  function plantEnvoy(h: Host, dir = h.bin): string {
    const file = path.join(dir, 'envoy');
    writeFileSync(
      file,
      `#!/bin/sh\necho "$(id -u) $*" >> ${h.marks}/ran\necho "envoy  version: 0000/1.11.0/Clean/RELEASE/BoringSSL"\n[ "$1" = --version ] || sleep 30\n`,
      { mode: 0o755 },
    );
    return file;
  }

  function ran(h: Host): string[] {
    const f = path.join(h.marks, 'ran');
    return existsSync(f) ? readFileSync(f, 'utf8').trim().split('\n') : [];
  }

  /** The entries of CERTS_DIR as a listing: a start that refused must leave it as it was. */
  function listing(dir: string): string[] {
    return readdirSync(dir).sort();
  }

  async function runAgent(
    h: Host,
    env: Record<string, string>,
    opts: { stopAfterMs?: number } = {},
  ): Promise<{ code: number | null; out: string }> {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'run'], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        ISTIO_CLUSTER_CONFIG: path.join(h.conf, 'cluster.env'),
        ISTIO_SIDECAR_CONFIG: path.join(h.conf, 'sidecar.env'),
        CERTS_DIR: h.certs,
        ISTIO_AGENT_STATE_DIR: h.state,
        ISTIO_CAPTURE: 'false',
        ENVOY_USER: 'nobody',
        WORKLOAD_KEY_ALGORITHM: 'ECDSA',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const stop =
      opts.stopAfterMs === undefined
        ? undefined
        : setTimeout(() => child.kill('SIGTERM'), opts.stopAfterMs);
    const hang = setTimeout(() => child.kill('SIGKILL'), HANG_MS);
    const code = await new Promise<number | null>((r) =>
      child.once('exit', (c) => {
        r(c);
      }),
    );
    clearTimeout(hang);
    if (stop) clearTimeout(stop);
    return { code, out };
  }

  t.test('a sidecar.env written by the sidecar user cannot make root run its binary', async (t) => {
    const h = host(t);
    const evil = path.join(h.work, 'evil');
    mkdirSync(evil);
    plantEnvoy(h, evil);
    chownSync(evil, NOBODY, NOBODY);
    chownSync(path.join(evil, 'envoy'), NOBODY, NOBODY);
    const sidecarEnv = path.join(h.conf, 'sidecar.env');
    writeFileSync(sidecarEnv, `SIDECAR_MODE=envoy\nISTIO_BIN_BASE=${evil}\nEXEC_USER=root\n`);
    chownSync(sidecarEnv, NOBODY, NOBODY);
    const before = listing(h.certs);
    const r = await runAgent(h, {});
    t.equal(r.code, 78, 'exit 78');
    t.match(r.out, /sidecar\.env is owned by uid 65534, not root.*chown root:root/);
    t.same(ran(h), [], 'the planted binary never ran');
    t.same(listing(h.certs), before, 'CERTS_DIR untouched');
  });

  t.test('a configuration directory the sidecar user owns is refused', async (t) => {
    const h = host(t);
    chownSync(h.conf, NOBODY, NOBODY);
    const r = await runAgent(h, { SIDECAR_MODE: 'none' });
    t.equal(r.code, 78);
    t.match(r.out, /envoy is owned by uid 65534.*\[AGENT_E_UNSAFE_PATH\]/);
  });

  t.test('EXEC_USER=root is refused before anything runs', async (t) => {
    const h = host(t);
    plantEnvoy(h);
    const r = await runAgent(h, { SIDECAR_MODE: 'envoy', ISTIO_BIN_BASE: h.bin, EXEC_USER: '0' });
    t.equal(r.code, 78);
    t.match(r.out, /EXEC_USER: the sidecar must not run as root/);
    t.same(ran(h), [], 'nothing ran');
  });

  t.test('a sidecar binary others can change is refused, and never run', async (t) => {
    for (const how of ['directory owned by the sidecar user', 'group-writable binary']) {
      const h = host(t);
      const envoy = plantEnvoy(h);
      if (how.startsWith('directory')) chownSync(h.bin, NOBODY, NOBODY);
      else chmodSync(envoy, 0o775);
      const before = listing(h.certs);
      const r = await runAgent(h, {
        SIDECAR_MODE: 'envoy',
        ISTIO_BIN_BASE: h.bin,
        EXEC_USER: 'nobody',
      });
      t.equal(r.code, 78, `${how}: exit 78`);
      t.match(r.out, /AGENT_E_UNSAFE_PATH/, `${how}: says why`);
      t.same(ran(h), [], `${how}: the binary never ran, not even --version`);
      t.same(
        listing(h.certs),
        before,
        `${how}: refused before the first CSR (CERTS_DIR untouched)`,
      );
    }
  });

  t.test('the envoy version probe runs as EXEC_USER, never as root', async (t) => {
    const h = host(t);
    plantEnvoy(h);
    const r = await runAgent(
      h,
      {
        SIDECAR_MODE: 'envoy',
        ISTIO_BIN_BASE: h.bin,
        EXEC_USER: 'nobody',
        ISTIO_CP_AUTH: 'NONE',
        ISTIO_PROXY_READY_TIMEOUT: '1s',
      },
      { stopAfterMs: 8000 },
    );
    const runs = ran(h);
    t.ok(runs.length > 0, 'the binary ran', { out: r.out });
    t.same(
      runs.filter((l) => !l.startsWith(`${NOBODY} `)),
      [],
      `every run was as uid ${NOBODY}: ${runs.join(' | ')}`,
    );
    t.ok(
      runs.some((l) => l === `${NOBODY} --version`),
      'the --version probe was one of them',
    );
  });

  t.test('a CERTS_DIR owned by the sidecar user, with a planted ..bootstrap link', async (t) => {
    const h = host(t);
    const victim = path.join(h.work, 'victim');
    mkdirSync(victim);
    writeFileSync(path.join(victim, 'key.pem'), 'victim\n');
    symlinkSync(victim, path.join(h.certs, '..bootstrap'));
    chownSync(h.certs, NOBODY, NOBODY);
    const r = await runAgent(h, { SIDECAR_MODE: 'none' });
    t.equal(r.code, 78, 'exit 78');
    t.match(r.out, /certs is owned by uid 65534, not root/);
    t.equal(readFileSync(path.join(victim, 'key.pem'), 'utf8'), 'victim\n', 'nothing written');
    t.same(readdirSync(victim), ['key.pem'], 'nothing created outside');
  });

  t.test('FIFOs and links where files belong: exit 78 at once, no hang', async (t) => {
    const cases: [string, (h: Host) => void, RegExp][] = [
      [
        'key.pem is a FIFO',
        (h) => {
          rmSync(path.join(h.certs, 'key.pem'));
          execFileSync('mkfifo', [path.join(h.certs, 'key.pem')]);
        },
        /key\.pem is a FIFO/,
      ],
      [
        'cert-chain.pem links to a root-only secret',
        (h) => {
          writeFileSync(path.join(h.work, 'shadow'), 'root only secret\n', { mode: 0o600 });
          rmSync(path.join(h.certs, 'cert-chain.pem'));
          symlinkSync(path.join(h.work, 'shadow'), path.join(h.certs, 'cert-chain.pem'));
        },
        /cert-chain\.pem is a symlink/,
      ],
      [
        'cluster.env is a FIFO',
        (h) => {
          rmSync(path.join(h.conf, 'cluster.env'));
          execFileSync('mkfifo', [path.join(h.conf, 'cluster.env')]);
        },
        /cluster\.env is a FIFO/,
      ],
    ];
    for (const [name, plant, re] of cases) {
      const h = host(t);
      plant(h);
      const r = await runAgent(h, { SIDECAR_MODE: 'none' });
      t.equal(r.code, 78, `${name}: exit 78`);
      t.match(r.out, re, `${name}: names the file`);
      const leaked = readdirSync(h.certs, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile())
        .filter((e) => readFileSync(path.join(e.parentPath, e.name), 'utf8').includes('root only'));
      t.same(leaked, [], `${name}: no secret copied into CERTS_DIR`);
    }
  });
}
