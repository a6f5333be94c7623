import t from 'tap';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { requireRoot } from '../helpers/root';
import { createNetns, type Netns } from '../helpers/netns';
import { normaliseSave } from '../../src/netfilter/live';
import { tmpDir } from '../helpers/tmp';

// `istio-node-agent iptables …` run from source (node --import tsx src/main.ts) inside a network
// namespace, reading a cluster.env like the daemon does.

const root = path.resolve(__dirname, '../..');

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function cli(ns: Netns, env: Record<string, string>, args: string[], as?: number): Promise<Run> {
  const who =
    as === undefined ? [] : ['setpriv', `--reuid=${as}`, `--regid=${as}`, '--clear-groups'];
  // `env -u NODE_OPTIONS`: keep tap's process-tracking hooks out of the CLI under test.
  const node = ['env', '-u', 'NODE_OPTIONS', process.execPath];
  return new Promise((resolve) => {
    execFile(
      'ip',
      [
        'netns',
        'exec',
        ns.name,
        ...who,
        ...node,
        '--import',
        'tsx',
        path.join(root, 'src/main.ts'),
        'iptables',
        ...args,
      ],
      { cwd: root, env: { PATH: process.env.PATH, HOME: '/tmp', ...env }, timeout: 120_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function save(ns: Netns): string {
  return normaliseSave(ns.runSync('iptables-save', []) + ns.runSync('ip6tables-save', []));
}

if (requireRoot(t, 'iptables CLI tests')) {
  const dir = tmpDir(t, 'nf-cli-', { mode: 0o700 });
  chmodSync(dir, 0o755); // readable by the non-root run
  const ns = createNetns('nf');
  t.teardown(() => {
    ns.remove();
  });
  const clusterEnv = path.join(dir, 'cluster.env');
  const stateDir = path.join(dir, 'state');
  const env = {
    ISTIO_CLUSTER_CONFIG: clusterEnv,
    ISTIO_SIDECAR_CONFIG: '/dev/null',
    ISTIO_AGENT_STATE_DIR: stateDir,
  };
  const good = [
    'ISTIO_SERVICE_CIDR=10.96.0.0/16,10.100.0.0/16',
    'ISTIO_SERVICE_EXCLUDE_CIDR=10.96.5.0/24',
    'ISTIO_INBOUND_PORTS=8080,9090',
    'ENVOY_USER=nobody',
  ];
  ns.runSync('iptables', ['-t', 'nat', '-A', 'OUTPUT', '-d', '192.0.2.1', '-j', 'RETURN']);
  ns.runSync('iptables', ['-A', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT']);
  const before = save(ns);

  t.test('bad input: exit 78 naming file, line and variable; the host is untouched', async (t) => {
    const cases: [line: string, variable: string, code: string, pattern: RegExp][] = [
      [
        'ISTIO_SERVICE_CIDR=10.0.0.0/33',
        'ISTIO_SERVICE_CIDR',
        'AGENT_E_CONFIG_VALUE',
        /above the maximum \/32/,
      ],
      [
        'ISTIO_SERVICE_EXCLUDE_CIDR=010.1.1.1',
        'ISTIO_SERVICE_EXCLUDE_CIDR',
        'AGENT_E_CONFIG_VALUE',
        /leading zero/,
      ],
      [
        'ISTIO_INBOUND_PORTS=8080,70000',
        'ISTIO_INBOUND_PORTS',
        'AGENT_E_CONFIG_VALUE',
        /"70000" is not a port/,
      ],
      [
        'ISTIO_INBOUND_INTERCEPTION_MODE=tproxy',
        'ISTIO_INBOUND_INTERCEPTION_MODE',
        'AGENT_E_CONFIG_VALUE',
        /not one of REDIRECT, TPROXY/,
      ],
      ['ENVOY_USER=nf-no-such-user', 'ENVOY_USER', 'AGENT_E_USER_UNKNOWN', /does not exist/],
    ];
    for (const [bad, variable, code, pattern] of cases) {
      // The bad line is line 2 of cluster.env.
      writeFileSync(
        clusterEnv,
        ['# test', bad, ...good.filter((g) => !g.startsWith(variable + '='))].join('\n') + '\n',
      );
      for (const sub of ['apply', 'plan']) {
        const r = await cli(ns, env, [sub]);
        t.equal(r.code, 78, `${sub} with ${bad}: exit 78`);
        t.match(r.stderr, `${clusterEnv}:2: ${variable}: `, 'names file, line and variable');
        t.match(r.stderr, pattern);
        t.match(r.stderr, `[${code}]`);
      }
      t.equal(save(ns), before, `${bad}: iptables-save untouched`);
      t.notOk(existsSync(stateDir), 'no state written');
    }
  });

  t.test('plan, apply, diff, clean', async (t) => {
    writeFileSync(clusterEnv, good.join('\n') + '\n');
    const plan = await cli(ns, env, ['plan']);
    t.equal(plan.code, 0, 'plan: exit 0');
    t.match(plan.stdout, /^# ipv4: iptables-restore --noflush\n\*nat\n/);
    t.match(
      plan.stdout,
      '-A ISTIO_OUTPUT -d 10.96.5.0/24 -j RETURN\n-A ISTIO_OUTPUT -d 10.96.0.0/16 -j ISTIO_REDIRECT\n',
    );
    t.equal(save(ns), before, 'plan changes nothing');
    const pj = JSON.parse((await cli(ns, env, ['plan', '--json'])).stdout) as {
      ruleCount: number;
      proxy: { uid: number };
    };
    t.equal(pj.ruleCount, 16, 'plan --json: rule count');
    t.equal(pj.proxy.uid, 65534, 'plan --json: the proxy uid');

    const notRoot = await cli(ns, env, ['apply'], 65534);
    t.equal(notRoot.code, 1, 'apply as non-root: exit 1');
    t.match(notRoot.stderr, /\[AGENT_E_NOT_ROOT\]/);
    t.equal(save(ns), before, 'non-root apply changed nothing');

    const dry = await cli(ns, env, ['apply', '--dry-run']);
    t.equal(dry.code, 0);
    t.match(
      dry.stdout,
      /# ipv4: iptables-(nft|legacy)-restore --noflush -w 10\n\*nat\n/,
      'dry-run prints the transaction',
    );
    t.equal(save(ns), before, 'dry-run changes nothing');

    const apply = await cli(ns, env, ['apply']);
    t.equal(apply.code, 0, 'apply: exit 0');
    t.match(apply.stdout, /^capture applied: 16 rules/);
    t.match(save(ns), /-A OUTPUT -p tcp -j ISTIO_OUTPUT/);
    const again = await cli(ns, env, ['apply', '--json']);
    t.match(
      JSON.parse(again.stdout),
      { changed: false, ruleCount: 16 },
      'apply again: in sync, nothing changed',
    );

    const inSync = await cli(ns, env, ['diff']);
    t.equal(inSync.code, 0, 'diff in sync: exit 0');
    t.match(inSync.stdout, /^in sync: 16 rules/);

    ns.runSync('iptables', [
      '-t',
      'nat',
      '-D',
      'ISTIO_OUTPUT',
      '-d',
      '10.100.0.0/16',
      '-j',
      'ISTIO_REDIRECT',
    ]);
    const differs = await cli(ns, env, ['diff']);
    t.equal(differs.code, 3, 'diff after a hand edit: exit 3 (differs), not 1 (a failure)');
    t.match(differs.stdout, 'ipv4 nat: chain ISTIO_OUTPUT differs\n');
    t.match(
      differs.stdout,
      '+ -A ISTIO_OUTPUT -d 10.100.0.0/16 -j ISTIO_REDIRECT\n',
      'shows the missing rule',
    );
    const dj = await cli(ns, env, ['diff', '--json']);
    t.equal(dj.code, 3, 'diff --json: exit 3 too');
    t.match(JSON.parse(dj.stdout), {
      inSync: false,
      differences: [{ family: 4, table: 'nat', kind: 'chain-differs', chain: 'ISTIO_OUTPUT' }],
    });

    t.equal((await cli(ns, env, ['apply'])).code, 0, 'apply repairs it');
    t.equal((await cli(ns, env, ['diff'])).code, 0, 'in sync again');

    // An IPv6 range, then none: the second apply still finds and removes the IPv6 rules (the
    // state record says they are there, so apply reads ip6tables although the config has no IPv6).
    writeFileSync(
      clusterEnv,
      [...good.slice(1), 'ISTIO_SERVICE_CIDR=10.96.0.0/16,fd00:96::/64'].join('\n') + '\n',
    );
    t.equal((await cli(ns, env, ['apply'])).code, 0, 'apply with an IPv6 range');
    t.match(ns.runSync('ip6tables-save', []), /-A ISTIO_OUTPUT -d fd00:96::\/64 -j ISTIO_REDIRECT/);
    writeFileSync(clusterEnv, good.join('\n') + '\n');
    t.equal((await cli(ns, env, ['apply'])).code, 0, 'apply without it');
    t.notMatch(ns.runSync('ip6tables-save', []), /ISTIO/, 'the IPv6 rules are gone');

    const clean = await cli(ns, env, ['clean']);
    t.equal(clean.code, 0, 'clean: exit 0');
    t.match(clean.stdout, /^capture removed/);
    t.equal(save(ns), before, 'clean: iptables-save exactly as before apply');
    const clean2 = await cli(ns, env, ['clean']);
    t.match(clean2.stdout, /nothing changed/, 'clean twice: nothing to do');
  });

  t.test('help and usage', async (t) => {
    for (const sub of ['plan', 'apply', 'clean', 'diff']) {
      const r = await cli(ns, env, [sub, '--help']);
      t.equal(r.code, 0, `${sub} --help: exit 0`);
      t.match(r.stdout, `Usage: istio-node-agent iptables ${sub}`);
    }
    const top = await cli(ns, env, ['--help']);
    t.match(top.stdout, /plan\s+print the rules/);
    t.equal((await cli(ns, env, ['frobnicate'])).code, 2, 'unknown subcommand: exit 2');
    t.equal((await cli(ns, env, ['apply', '--bogus'])).code, 2, 'unknown option: exit 2');
  });
}
