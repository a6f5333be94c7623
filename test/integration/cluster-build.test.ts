// The build: the daemon's file does not carry the Kubernetes client; the `cluster` commands run
// from the two files alone (no node_modules), and say what is missing without the second.
import t from 'tap';
import { tmpDir } from '../helpers/tmp';
import { execFile, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { apiServer, putMeshExpansion } from '../helpers/cluster';

const ROOT = path.resolve(__dirname, '../..');
const execFileP = promisify(execFile);

void t.test(
  'scripts/build.mjs: two files; cluster from them alone; the daemon file without the client',
  async (t) => {
    const out = tmpDir(t, 'cluster-build-', { mode: 0o700 });
    const b = spawnSync(process.execPath, ['scripts/build.mjs', out], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    t.equal(b.status, 0, b.stderr);
    const main = path.join(out, 'istio-node-agent.cjs');
    const kube = path.join(out, 'istio-node-agent-kube.cjs');
    const mainText = readFileSync(main, 'utf8');
    t.notMatch(
      mainText,
      /ObjectSerializer|RequiredError\("CoreV1Api"/,
      'the daemon file has no Kubernetes client',
    );
    const kubeText = readFileSync(kube, 'utf8');
    t.match(kubeText, /RequiredError\("CoreV1Api"/, 'the second file has it');
    // esbuild marks each bundled module with a `// path` line: of the project, only the client.
    t.same(
      [...new Set(kubeText.match(/^\/\/ src\/\S+$/gm))],
      ['// src/cluster/kube-client.ts'],
      'the second file holds no other module of the project (its types are types only)',
    );
    t.match(
      mainText,
      /import\("\.\/istio-node-agent-kube\.cjs"\)/,
      'loaded from beside the main file, on demand',
    );
    t.ok(statSync(main).size < 3e6, `the daemon file stays small (${statSync(main).size} bytes)`);
    // One character outside ASCII (a '…' in a comment esbuild keeps) makes V8 hold the whole
    // 2 MB source as UTF-16: +2 MiB resident for the daemon, measured.
    const nonAscii = /[^\t\n\r\x20-\x7e]/.exec(mainText);
    t.equal(
      nonAscii,
      null,
      `the daemon file is ASCII only${nonAscii ? `: ${JSON.stringify(mainText.slice(nonAscii.index - 60, nonAscii.index + 20))}` : ''}`,
    );

    // Copied elsewhere, with no node_modules: `cluster env` against the API server double.
    const { server, kubeconfig } = await apiServer(t);
    putMeshExpansion(server);
    const run = tmpDir(t, 'cluster-run-', { mode: 0o700 });
    copyFileSync(main, path.join(run, 'istio-node-agent.cjs'));
    t.notOk(existsSync(path.join(run, 'node_modules')));
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', KUBECONFIG: kubeconfig, HOME: run };
    const alone = spawnSync(
      process.execPath,
      [path.join(run, 'istio-node-agent.cjs'), 'cluster', 'env'],
      { env, encoding: 'utf8' },
    );
    t.equal(alone.status, 78, 'without the second file: a missing piece, said clearly');
    t.match(
      alone.stderr,
      /the cluster commands' Kubernetes client could not be loaded .* they ship as dist\/istio-node-agent-kube\.cjs beside dist\/istio-node-agent\.cjs .*\[AGENT_E_MISSING_TOOL\]/,
    );

    copyFileSync(kube, path.join(run, 'istio-node-agent-kube.cjs'));
    // Asynchronously: the API server double answers from this process.
    const both = await execFileP(
      process.execPath,
      [path.join(run, 'istio-node-agent.cjs'), 'cluster', 'env'],
      { env, encoding: 'utf8' },
    );
    t.match(both.stdout, /^ISTIO_SERVICE_CIDR=10\.96\.0\.0\/12$/m);
    t.match(both.stdout, /^CITADEL_ADDRESS=10\.10\.0\.8:8060$/m);
    t.equal(server.requests.at(0)?.user, 'admin', 'KUBECONFIG was used');

    const help = spawnSync(process.execPath, [path.join(run, 'istio-node-agent.cjs'), '--help'], {
      encoding: 'utf8',
    });
    t.match(
      help.stdout,
      /cluster\s+on a workstation: cluster\.env, DNS, certificates, VM bundles and setup, register/,
    );
  },
);
