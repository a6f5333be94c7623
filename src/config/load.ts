import { AgentError, combineErrors, toAgentError } from '../lib/errors';
import { readFileSafe } from '../lib/safe-fs';
import { scanEnvFile } from './env-file';
import { nameWarnings, type FileNames } from './names';
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
  /** The two files, whether each was there and how many variables it set. */
  readonly sources: readonly ConfigSource[];
  /**
   * Non-fatal findings, in file and line order: unknown names (with the nearest known one),
   * names set twice in a file.
   */
  readonly warnings: readonly string[];
}

/**
 * Reads a configuration file, treating "does not exist" as empty. The agent runs as root and
 * these files decide what it runs, so the file and every directory above it must be owned by
 * root and writable by no one else (sshd's StrictModes); it is opened once, without following a
 * symlink or blocking on a FIFO, and read from that descriptor. Bad UTF-8 names its line.
 */
async function readOptional(file: string): Promise<string | undefined> {
  let r;
  try {
    r = await readFileSafe(file, { trusted: true });
  } catch (e) {
    // The messages name the file: "cannot open /x/cluster.env: permission denied (EACCES); …".
    const err = toAgentError(e);
    if (err.code === 'AGENT_E_UNSAFE_PATH' || err.code === 'AGENT_E_NOT_ROOT') throw err;
    throw new AgentError('AGENT_E_CONFIG_READ', err.message, { cause: e });
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

/** One configuration file as it was read. */
export interface ConfigSource {
  readonly role: 'cluster' | 'sidecar';
  readonly path: string;
  /** Named by ISTIO_CLUSTER_CONFIG or ISTIO_SIDECAR_CONFIG (else the default path). */
  readonly explicit: boolean;
  /** False: the default path is absent (or /dev/null was named), and the defaults apply. */
  readonly present: boolean;
  /** Assignments read from it. */
  readonly variables: number;
}

/** What a file is named by, for messages. */
const FILE_VARIABLE = { cluster: 'ISTIO_CLUSTER_CONFIG', sidecar: 'ISTIO_SIDECAR_CONFIG' } as const;
const DEFAULT_PATH = { cluster: DEFAULT_CLUSTER_ENV, sidecar: DEFAULT_SIDECAR_ENV } as const;
/** Named as a configuration file, it stands for none (as for systemd and shells). */
const NO_FILE = '/dev/null';

/** What readSources found: the variables, the files, and every problem with them (in order). */
interface ReadRaw {
  readonly raw: RawEnv;
  readonly files: AgentConfig['files'];
  readonly sources: ConfigSource[];
  readonly scanned: FileNames[];
  readonly problems: AgentError[];
}

async function readSources(env: NodeJS.ProcessEnv): Promise<ReadRaw> {
  const files = {
    cluster: env.ISTIO_CLUSTER_CONFIG || DEFAULT_CLUSTER_ENV,
    sidecar: env.ISTIO_SIDECAR_CONFIG || DEFAULT_SIDECAR_ENV,
  };
  const raw = new RawEnv();
  const sources: ConfigSource[] = [];
  const scanned: FileNames[] = [];
  const problems: AgentError[] = [];
  for (const role of ['cluster', 'sidecar'] as const) {
    const file = files[role];
    const explicit = Boolean(env[FILE_VARIABLE[role]]);
    let text: string | undefined;
    try {
      text = file === NO_FILE ? undefined : await readOptional(file);
    } catch (e) {
      problems.push(toAgentError(e));
      continue;
    }
    if (text === undefined && explicit && file !== NO_FILE) {
      problems.push(
        new AgentError(
          'AGENT_E_CONFIG_READ',
          `${file} does not exist; create it, fix the path, or unset ${FILE_VARIABLE[role]} to use ${DEFAULT_PATH[role]} (${NO_FILE} stands for no file)`,
          { origin: { file: 'environment', line: 0, variable: FILE_VARIABLE[role] } },
        ),
      );
    }
    const { entries, problems: syntax } =
      text === undefined ? { entries: [], problems: [] } : scanEnvFile(text, file);
    problems.push(...syntax);
    for (const e of entries) raw.set(e.key, e.value, file, e.line);
    scanned.push({ file, entries });
    sources.push({
      role,
      path: file,
      explicit,
      present: text !== undefined,
      variables: entries.length,
    });
  }
  for (const [k, v] of Object.entries(env)) if (v !== undefined) raw.set(k, v, 'environment', 0);
  return { raw, files, sources, scanned, problems };
}

/**
 * The variables of the files and the environment, read leniently: a bad line or a missing named
 * file is left out rather than thrown (for `status`, which needs only ISTIO_AGENT_STATE_DIR).
 */
export async function readRaw(
  env: NodeJS.ProcessEnv,
): Promise<{ raw: RawEnv; files: AgentConfig['files'] }> {
  const { raw, files } = await readSources(env);
  return { raw, files };
}

/**
 * The configuration, every section read even when an earlier one has a bad value, and every
 * bad value found (in file and line order). Pure.
 */
export function collectConfig(
  raw: RawEnv,
  files: AgentConfig['files'],
): { config: AgentConfig; problems: AgentError[] } {
  const section = <T>(parse: () => T, fallback: () => T): T => {
    try {
      return parse();
    } catch (e) {
      // A section's own check stopped it (RawEnv.fail); the problem is recorded.
      if (e instanceof AgentError && raw.problems.includes(e)) return fallback();
      throw e;
    }
  };
  const empty = new RawEnv();
  const core = section(
    () => parseCore(raw),
    () => parseCore(empty),
  );
  const config: AgentConfig = {
    files,
    core,
    ca: section(
      () => parseCa(raw),
      () => parseCa(empty),
    ),
    capture: section(
      () => parseCapture(raw),
      () => parseCapture(empty),
    ),
    dns: section(
      () => parseDns(raw),
      () => parseDns(empty),
    ),
    sidecar: section(
      () => parseSidecar(raw, core),
      () => parseSidecar(empty, core),
    ),
  };
  return { config, problems: sortProblems(raw.problems, files) };
}

/** The configuration; throws every bad value together (AgentError.problems), in order. */
export function buildConfig(raw: RawEnv, files: AgentConfig['files']): AgentConfig {
  const { config, problems } = collectConfig(raw, files);
  const err = combineErrors(problems);
  if (err) throw err;
  return config;
}

/**
 * Problems in the order of the files (cluster.env, sidecar.env, the environment, anything
 * else), then of the lines; a problem without an origin first (a file that cannot be read).
 */
function sortProblems(problems: readonly AgentError[], files: AgentConfig['files']): AgentError[] {
  const rank = (e: AgentError): number => {
    const f = e.origin?.file;
    if (f === undefined) return -1;
    if (f === files.cluster) return 0;
    if (f === files.sidecar) return 1;
    if (f === 'environment') return 2;
    return 3;
  };
  return problems
    .map((e, i) => ({ e, i }))
    .sort(
      (a, b) =>
        rank(a.e) - rank(b.e) || (a.e.origin?.line ?? 0) - (b.e.origin?.line ?? 0) || a.i - b.i,
    )
    .map((x) => x.e);
}

/**
 * Reads, merges and validates the configuration. Every problem of the files and values is
 * thrown together (AgentError.problems: every bad line, in file and line order; exit 78).
 */
export async function loadConfig(env: NodeJS.ProcessEnv = process.env): Promise<LoadResult> {
  const r = await readSources(env);
  const { config, problems } = collectConfig(r.raw, r.files);
  const err = combineErrors(sortProblems([...r.problems, ...problems], r.files));
  if (err) throw err;
  return {
    config,
    raw: r.raw,
    sources: r.sources,
    warnings: nameWarnings(r.scanned, env, r.raw.read),
  };
}
