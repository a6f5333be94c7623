/**
 * cluster.env and sidecar.env as the cluster commands write them: each variable with a comment
 * saying where its value came from, and a check that the agent itself accepts the result.
 * Pure.
 */
import { RawEnv, buildConfig, parseEnvFile } from '../config/index';
import { AgentError } from '../lib/errors';

export interface EnvEntry {
  readonly key: string;
  readonly value: string;
  /** Where the value came from: one line, written as a comment above it. */
  readonly source: string;
}

/** A value as the env files take it: bare when plain, else single-quoted (literal). */
export function quoteEnvValue(v: string): string {
  if (/^[A-Za-z0-9_.,:/@%+=[\]*-]*$/.test(v)) return v;
  if (!v.includes("'")) return `'${v}'`;
  return `"${v.replace(/[\\"$`]/g, (c) => `\\${c}`)}"`;
}

/** The file: a header (comment lines), then per entry its source comment and `KEY=value`. */
export function renderEnvFile(header: readonly string[], entries: readonly EnvEntry[]): string {
  const out = header.map((h) => (h === '' ? '#' : `# ${h}`));
  for (const e of entries) {
    if (/[\r\n]/.test(e.value)) throw new Error(`${e.key}: a value cannot hold a line break`);
    out.push('', `# ${e.source}`, `${e.key}=${quoteEnvValue(e.value)}`);
  }
  return out.join('\n') + '\n';
}

/**
 * Reads the files the way the agent does (its parser, its validation) and throws what the agent
 * would say about them. `files` are name → text, in the agent's precedence order.
 */
export function checkAgentAccepts(files: readonly { name: string; text: string }[]): void {
  const raw = new RawEnv();
  try {
    for (const f of files) {
      for (const e of parseEnvFile(f.text, f.name)) raw.set(e.key, e.value, f.name, e.line);
    }
    buildConfig(raw, { cluster: files[0]?.name ?? 'cluster.env', sidecar: files[1]?.name ?? '' });
  } catch (e) {
    const line = e instanceof AgentError ? e.toLine() : String(e);
    throw new AgentError(
      'AGENT_E_INTERNAL',
      `the agent would refuse the generated file: ${line}; please report this`,
      { cause: e },
    );
  }
}
