// What the system test and the system bench both do before their first step: build the .deb and
// the Debian 12 root, boot a container that is taken down however the process ends, and put the
// envoy and pilot-agent test doubles where an operator would have installed the real binaries.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { Container, reapStale } from './container';

const repo = path.resolve(__dirname, '../..');

/** The envoy and pilot-agent test doubles and a Node.js to run them, outside PATH inside. */
export const DOUBLES = '/opt/systest';

function host(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): string {
  const r = spawnSync(cmd, args, { cwd: repo, env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr.slice(-4000)}`);
  }
  return r.stdout;
}

/** The tools the container needs from the host, by name, that are not on PATH. */
export function missingTools(): string[] {
  return ['systemd-nspawn', 'debootstrap', 'nsenter', 'dpkg-deb', 'dpkg-shlibdeps', 'strip'].filter(
    (tool) => spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0,
  );
}

/**
 * Builds the package (or takes ISTIO_SYSTEM_TEST_DEB), makes or reuses the root, boots it as
 * `name` under `workParent` and copies the package to /tmp/systest/agent.deb inside. The
 * container is destroyed at process exit and on SIGTERM/SIGINT/SIGHUP (a runner's timeout runs
 * no teardown). `say` gets one line per step, with its duration.
 */
export async function bootWithPackage(
  workParent: string,
  name: string,
  say: (line: string) => void,
): Promise<Container> {
  for (const dir of reapStale(workParent)) say(`removed the leftovers of an earlier run: ${dir}`);
  const t0 = Date.now();
  // gzip instead of xz: the same package, built in seconds instead of minutes.
  const deb =
    process.env.ISTIO_SYSTEM_TEST_DEB ??
    host('bash', ['scripts/build-deb.sh'], { ...process.env, DEB_COMPRESSION: 'gzip' })
      .trim()
      .split('\n')
      .at(-1)!;
  say(`package ${deb} (${Math.round((Date.now() - t0) / 1000)} s)`);
  const t1 = Date.now();
  const root = host('bash', ['scripts/system-test/make-root.sh']).trim();
  say(`Debian 12 root ${root} (${Math.round((Date.now() - t1) / 1000)} s)`);
  const t2 = Date.now();
  const c = await Container.boot({
    root,
    workDir: path.join(workParent, `run-${process.pid}`),
    name,
  });
  process.once('exit', () => {
    c.destroySync();
  });
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.once(sig, () => {
      c.destroySync();
      process.kill(process.pid, sig);
    });
  }
  say(`booted ${c.name} in ${Math.round((Date.now() - t2) / 1000)} s`);
  mkdirSync(c.hostPath('/tmp/systest'), { recursive: true });
  copyFileSync(deb, c.hostPath('/tmp/systest/agent.deb'));
  return c;
}

/**
 * The envoy and pilot-agent test doubles as `${DOUBLES}/bin/envoy` and `.../pilot-agent`, run by
 * a copy of this Node.js (the host itself has no Node.js: the agent carries its own). As an
 * operator installs envoy before the agent.
 */
export async function installDoubles(c: Container): Promise<void> {
  mkdirSync(c.hostPath(`${DOUBLES}/bin`), { recursive: true });
  copyFileSync(process.execPath, c.hostPath(`${DOUBLES}/node`));
  copyFileSync(
    path.join(repo, 'test/doubles/fake-envoy.cjs'),
    c.hostPath(`${DOUBLES}/fake-envoy.cjs`),
  );
  await c.must(
    `chmod 0755 ${DOUBLES}/node && printf '#!/bin/sh\n# TEST DOUBLE of envoy (test/doubles/fake-envoy.cjs)\nexec ${DOUBLES}/node ${DOUBLES}/fake-envoy.cjs "$@"\n' > ${DOUBLES}/bin/envoy && chmod 0755 ${DOUBLES}/bin/envoy && ${DOUBLES}/bin/envoy --version`,
  );
  // The pilot-agent double runs the envoy beside its own script: ${DOUBLES}/bin/envoy.
  copyFileSync(
    path.join(repo, 'test/doubles/fake-pilot-agent.cjs'),
    c.hostPath(`${DOUBLES}/bin/fake-pilot-agent.cjs`),
  );
  await c.must(
    `printf '#!/bin/sh\n# TEST DOUBLE of pilot-agent (test/doubles/fake-pilot-agent.cjs)\nexec ${DOUBLES}/node ${DOUBLES}/bin/fake-pilot-agent.cjs "$@"\n' > ${DOUBLES}/bin/pilot-agent && chmod 0755 ${DOUBLES}/bin/pilot-agent`,
  );
}
