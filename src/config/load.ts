import { AgentError } from '../lib/errors';
import { readFileSafe } from '../lib/safe-fs';
import { parseEnvFile } from './env-file';
import { RawEnv } from './raw';
import { parseCa } from './sections/ca';
import { parseCapture } from './sections/capture';
import { parseCore } from './sections/core';
import { parseDns } from './sections/dns';
import { parseSidecar } from './sections/sidecar';
import type { AgentConfig } from './types';

export const DEFAULT_CLUSTER_ENV = '/var/lib/istio/envoy/cluster.env';
export const DEFAULT_SIDECAR_ENV = '/var/lib/istio/envoy/sidecar.env';

export interface LoadResult {
  readonly config: AgentConfig;
  readonly raw: RawEnv;
  /** Non-fatal findings, e.g. unknown ISTIO_* keys. */
  readonly warnings: readonly string[];
}

/**
 * Reads a configuration file, treating "does not exist" as empty. The agent runs as root and
 * these files decide what it runs, so the file and every directory above it must be owned by
 * root and writable by no one else (sshd's StrictModes); it is opened once, without following a
 * symlink or blocking on a FIFO, and read from that descriptor. Bad UTF-8 names its line.
 */
async function readOptional(file: string): Promise<string | undefined> {
  const origin = { file, line: 0, variable: '(file)' };
  let r;
  try {
    r = await readFileSafe(file, { trusted: true, origin });
  } catch (e) {
    if (e instanceof AgentError && e.code === 'AGENT_E_UNSAFE_PATH') throw e;
    const err = e as AgentError;
    throw new AgentError('AGENT_E_CONFIG_READ', `cannot read ${file}: ${err.message}`, {
      cause: e,
      origin,
    });
  }
  return r === undefined ? undefined : decodeUtf8(r.data, file);
}

/** The text of a configuration file; invalid UTF-8 is an error naming the line. */
export function decodeUtf8(data: Buffer, file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(data);
  } catch {
    let line = 1;
    let start = 0;
    for (let i = 0; i <= data.length; i++) {
      if (i === data.length || data[i] === 0x0a) {
        try {
          new TextDecoder('utf-8', { fatal: true }).decode(data.subarray(start, i));
        } catch {
          break;
        }
        line++;
        start = i + 1;
      }
    }
    throw new AgentError(
      'AGENT_E_CONFIG_SYNTAX',
      'the line is not valid UTF-8; save the file as UTF-8 (or plain ASCII)',
      { origin: { file, line, variable: '(line)' } },
    );
  }
}

/** Builds the merged variable set: cluster.env < sidecar.env < process environment. */
export async function readRaw(
  env: NodeJS.ProcessEnv,
): Promise<{ raw: RawEnv; files: AgentConfig['files'] }> {
  const files = {
    cluster: env.ISTIO_CLUSTER_CONFIG || DEFAULT_CLUSTER_ENV,
    sidecar: env.ISTIO_SIDECAR_CONFIG || DEFAULT_SIDECAR_ENV,
  };
  const raw = new RawEnv();
  for (const file of [files.cluster, files.sidecar]) {
    const text = await readOptional(file);
    if (text === undefined) continue;
    for (const e of parseEnvFile(text, file)) raw.set(e.key, e.value, file, e.line);
  }
  for (const [k, v] of Object.entries(env)) if (v !== undefined) raw.set(k, v, 'environment', 0);
  return { raw, files };
}

export function buildConfig(raw: RawEnv, files: AgentConfig['files']): AgentConfig {
  const core = parseCore(raw);
  return {
    files,
    core,
    ca: parseCa(raw),
    capture: parseCapture(raw),
    dns: parseDns(raw),
    sidecar: parseSidecar(raw, core),
  };
}

/** Names of environment variables that are not configuration (never warned about). */
const NOT_CONFIG = new Set(['ISTIO_CLUSTER_CONFIG', 'ISTIO_SIDECAR_CONFIG']);

export async function loadConfig(env: NodeJS.ProcessEnv = process.env): Promise<LoadResult> {
  const { raw, files } = await readRaw(env);
  const config = buildConfig(raw, files);
  const warnings: string[] = [];
  for (const k of raw.keys()) {
    if (
      k.startsWith('ISTIO_') &&
      !raw.read.has(k) &&
      !NOT_CONFIG.has(k) &&
      !k.startsWith('ISTIO_META_')
    ) {
      const o = raw.origin(k);
      warnings.push(`${o.file}${o.line ? `:${o.line}` : ''}: unknown variable ${k} is ignored`);
    }
  }
  return { config, raw, warnings };
}
