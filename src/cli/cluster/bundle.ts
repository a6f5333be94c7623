/**
 * `cluster bundle VM_NAME` (one VM's files, in a folder or one tar archive) and `cluster setup
 * VM_NAME --host H` (the same bundle copied to the VM and installed there over ssh,
 * cluster/setup.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  DEFAULT_START,
  DEFAULT_STATUS,
  bundleTar,
  gatherBundle,
  isSshDestination,
  prepareDir,
  reachVm,
  setupVm,
  vmNameProblem,
  writeFiles,
  type WriteOutcome,
} from '../../cluster/index';
import { systemClock } from '../../lib/clock';
import { EXIT_OK } from '../../lib/errors';
import { exec } from '../../lib/exec';
import type { CommandContext } from '../context';
import {
  BUNDLE_OPTIONS,
  COMMON,
  OUTPUT,
  connect,
  durationOf,
  namespaceOf,
  orUsage,
  outcomes,
  printJson,
  refuse,
  str,
  usage,
  type Values,
  type Verb,
} from './options';
import { bundleRequest, pollOf } from './requests';

function vmName(verb: string, vm: string | undefined): string {
  if (vm === undefined) throw usage(verb, 'VM_NAME is required');
  refuse(verb, vmNameProblem(vm));
  return vm;
}

async function bundleCmd(ctx: CommandContext, v: Values, pos: string[]): Promise<number> {
  const vm = vmName('bundle', pos[0]);
  if (pos.length > 1) throw usage('bundle', `unexpected argument "${pos[1]}"`);
  const out = str(v, 'output');
  if (out === undefined) throw usage('bundle', '-o DIR is required');
  const req = bundleRequest('bundle', v, ctx, vm);
  const api = await connect(v, ctx);
  const b = await gatherBundle(api, { ...req, namespace: namespaceOf(v, api) });
  for (const n of b.env.notes) ctx.err(`note: ${n}\n`);
  let written: Record<string, WriteOutcome>;
  if (v.tar) {
    const dir = path.dirname(out);
    await prepareDir(dir, 0o700);
    written = await writeFiles(
      dir,
      [{ name: path.basename(out), content: bundleTar(vm, b.files, Date.now()), mode: 0o600 }],
      v.force === true,
    );
    if (!v.json)
      ctx.out(
        `${outcomes(dir, written)}\n${out} holds ${vm}/: ${b.files.map((f) => f.name).join(', ')}\n`,
      );
  } else {
    await prepareDir(out, 0o700, true);
    written = await writeFiles(out, b.files, v.force === true);
    if (!v.json) ctx.out(outcomes(out, written) + '\n');
  }
  if (v.json)
    printJson(ctx, {
      vm,
      output: out,
      tar: v.tar === true,
      files: written,
      certificate: b.certs,
      variables: b.env.entries,
    });
  else
    ctx.out(
      `${b.certs.identity ?? 'root certificate only'}: ${b.certs.validity}; next: see ${v.tar ? `${vm}/INSTALL in the archive` : path.join(out, 'INSTALL')}\n`,
    );
  return EXIT_OK;
}

const SETUP_OPTIONS = {
  host: { type: 'string' },
  ssh: { type: 'string' },
  scp: { type: 'string' },
  'remote-dir': { type: 'string' },
  'remote-root': { type: 'string' },
  sudo: { type: 'string' },
  deb: { type: 'string' },
  'install-command': { type: 'string' },
  'replace-certs': { type: 'boolean' },
  'start-command': { type: 'string' },
  'status-command': { type: 'string' },
  'copy-attempts': { type: 'string' },
  'copy-delay': { type: 'string' },
  'ready-timeout': { type: 'string' },
} as const;

async function setupCmd(ctx: CommandContext, v: Values, pos: string[]): Promise<number> {
  const vm = vmName('setup', pos[0]);
  if (pos.length > 1) throw usage('setup', `unexpected argument "${pos[1]}"`);
  const host = str(v, 'host');
  if (host === undefined || !isSshDestination(host))
    throw usage('setup', '--host [USER@]HOST is required');
  const attemptsText = str(v, 'copy-attempts') ?? '10';
  if (!/^\d{1,3}$/.test(attemptsText) || Number(attemptsText) < 1)
    throw usage('setup', `--copy-attempts "${attemptsText}" is not a number from 1`);
  const reach = orUsage(
    'setup',
    reachVm(
      {
        host,
        vm,
        ssh: str(v, 'ssh'),
        scp: str(v, 'scp'),
        sudo: str(v, 'sudo'),
        remoteDir: str(v, 'remote-dir'),
      },
      ctx.env,
    ),
  );
  const req = bundleRequest('setup', v, ctx, vm);
  const readyTimeoutMs = durationOf('setup', v, 'ready-timeout', 5 * 60_000);
  const copyDelayMs = durationOf('setup', v, 'copy-delay', 10_000);
  const pollMs = pollOf('setup', v);
  const api = await connect(v, ctx);
  const b = await gatherBundle(api, { ...req, namespace: namespaceOf(v, api) });
  for (const n of b.env.notes) ctx.err(`note: ${n}\n`);
  const work = await mkdtemp(path.join(tmpdir(), 'istio-node-agent-setup-'));
  try {
    const dir = path.join(work, vm);
    await prepareDir(dir, 0o700, true);
    await writeFiles(dir, b.files, false);
    const r = await setupVm(
      dir,
      b.files.map((f) => f.name),
      {
        host,
        ...reach,
        remoteRoot: str(v, 'remote-root'),
        replaceCerts: v['replace-certs'] === true,
        deb: str(v, 'deb'),
        installCommand: str(v, 'install-command'),
        startCommand: str(v, 'start-command') ?? DEFAULT_START,
        statusCommand: str(v, 'status-command') ?? DEFAULT_STATUS,
        copyAttempts: Number(attemptsText),
        copyDelayMs,
        readyTimeoutMs,
        pollMs,
      },
      {
        exec,
        clock: systemClock,
        progress: (line) => {
          ctx.err(`${line}\n`);
        },
      },
    );
    if (v.json) printJson(ctx, { vm, host, ...r, certificate: b.certs });
    else {
      ctx.out(
        `${vm} (${host}): ${r.changed.length ? `changed ${r.changed.join(' ')}` : 'nothing changed'}; agent ${r.action === 'restart' ? 'restarted' : 'started'}; ready\n`,
      );
      ctx.out(r.status.endsWith('\n') || r.status === '' ? r.status : `${r.status}\n`);
    }
    return EXIT_OK;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export const BUNDLE: Verb = {
  options: { ...COMMON, ...OUTPUT, ...BUNDLE_OPTIONS, tar: { type: 'boolean' } },
  run: bundleCmd,
};

export const SETUP: Verb = {
  options: { ...COMMON, ...BUNDLE_OPTIONS, ...SETUP_OPTIONS },
  run: setupCmd,
};
