import { promises as fs } from 'node:fs';
import { AgentError } from '../lib/errors';
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

/** Reads a file, treating "does not exist" as empty and anything else as an error. */
async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') return undefined;
    throw new AgentError('AGENT_E_CONFIG_READ', `cannot read ${file}: ${err.code ?? err.message}`, {
      cause: e,
      origin: { file, line: 0, variable: '(file)' },
    });
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
    sidecar: parseSidecar(raw, core.systemNamespace),
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
