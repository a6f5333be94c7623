/**
 * The error catalogue. Every error a user can see carries a stable `AGENT_E_*` code, a one-line
 * message that says what to do, whether retrying can help, and the process exit code it maps to.
 * `docs/errors.md` lists every code; test/unit/docs-sync.test.ts keeps the two in sync.
 *
 * Callers branch on `code`, never on the message.
 */

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_CONFIG = 78; // sysexits EX_CONFIG

interface CodeSpec {
  /** Process exit code when this error ends the process. */
  readonly exit: number;
  /** Whether trying again later can succeed without a human changing something. */
  readonly retryable: boolean;
}

const config = { exit: EXIT_CONFIG, retryable: false } as const;
const permanent = { exit: EXIT_FAILURE, retryable: false } as const;
const retryable = { exit: EXIT_FAILURE, retryable: true } as const;

/**
 * Grouped by component. Add a code at the end of its component's block and document it in
 * docs/errors.md under the same heading.
 */
export const ERROR_CODES = {
  // cli / general
  AGENT_E_USAGE: { exit: EXIT_USAGE, retryable: false },
  AGENT_E_INTERNAL: permanent,
  AGENT_E_NOT_ROOT: permanent,
  AGENT_E_EXEC: retryable,
  AGENT_E_IO: permanent,
  AGENT_E_MISSING_TOOL: config,
  AGENT_E_UNSAFE_PATH: config,
  AGENT_E_ALREADY_RUNNING: permanent,
  AGENT_E_LOCK_TIMEOUT: retryable,

  // config
  AGENT_E_CONFIG_READ: config,
  AGENT_E_CONFIG_SYNTAX: config,
  AGENT_E_CONFIG_VALUE: config,

  // identity
  AGENT_E_BOOTSTRAP_MISSING: config,
  AGENT_E_BOOTSTRAP_INVALID: config,
  AGENT_E_IDENTITY_SAN: config,
  AGENT_E_METADATA_UNAVAILABLE: retryable,
  AGENT_E_METADATA_BAD_RESPONSE: retryable,

  // ca
  AGENT_E_CA_UNAVAILABLE: retryable,
  AGENT_E_CA_REJECTED: permanent,
  AGENT_E_CA_AUTH: permanent,
  AGENT_E_CA_BAD_RESPONSE: retryable,
  AGENT_E_CA_OVERLOADED: retryable,

  // certs
  AGENT_E_CERT_KEY_MISMATCH: retryable,
  AGENT_E_CERT_SAN_MISMATCH: retryable,
  AGENT_E_CERT_VALIDITY: retryable,
  AGENT_E_CERT_CHAIN: retryable,
  AGENT_E_CERT_PARSE: retryable,
  AGENT_E_CERT_EXPIRED: permanent,
  AGENT_E_CERT_STORE: permanent,
  AGENT_E_CERT_TIMEOUT: retryable,

  // netfilter
  AGENT_E_IPTABLES_APPLY: retryable,
  AGENT_E_IPTABLES_BACKEND: permanent,
  AGENT_E_USER_UNKNOWN: config,
  AGENT_E_CAPTURE_DRIFT: retryable,

  // dns
  AGENT_E_DNSMASQ_MISSING: config,
  AGENT_E_DNSMASQ_RESTART: retryable,
  AGENT_E_RESOLVER: permanent,
  AGENT_E_DNSMASQ_REJECTED: permanent,
  AGENT_E_DNS_DRIFT: retryable,

  // sidecar
  AGENT_E_SIDECAR_BINARY: config,
  AGENT_E_SIDECAR_CRASHLOOP: retryable,
  AGENT_E_SIDECAR_BOOTSTRAP: permanent,

  // systemd
  AGENT_E_NOTIFY: retryable,

  // monitoring
  AGENT_E_MONITORING: retryable,

  // cluster (the workstation half: `istio-node-agent cluster ...`)
  AGENT_E_CLUSTER_KUBECONFIG: config,
  AGENT_E_CLUSTER_UNREACHABLE: retryable,
  AGENT_E_CLUSTER_TLS: permanent,
  AGENT_E_CLUSTER_AUTH: permanent,
  AGENT_E_CLUSTER_FORBIDDEN: permanent,
  AGENT_E_CLUSTER_NOT_FOUND: permanent,
  AGENT_E_CLUSTER_CONFLICT: retryable,
  AGENT_E_CLUSTER_API: permanent,
  AGENT_E_CLUSTER_MANAGED: permanent,
  AGENT_E_CLUSTER_TIMEOUT: retryable,
  AGENT_E_CLUSTER_SERVICE_CIDR: permanent,
  AGENT_E_CLUSTER_SECRET_INVALID: permanent,
  AGENT_E_CLUSTER_OUTPUT: permanent,
  AGENT_E_CLUSTER_SSH: retryable,
  AGENT_E_CLUSTER_VM_NOT_READY: permanent,
} as const satisfies Record<string, CodeSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** Where in the configuration a bad value came from. */
export interface Origin {
  /** A file path, or "environment" for the process environment, or "default". */
  readonly file: string;
  /** 1-based line number in `file`; 0 when not from a file. */
  readonly line: number;
  readonly variable: string;
}

export interface AgentErrorOptions {
  readonly cause?: unknown;
  readonly origin?: Origin;
  /** Structured details for logs; must never contain keys or tokens. */
  readonly details?: Record<string, unknown>;
  /** The remote side asked to wait at least this long before trying again (a retry hint). */
  readonly retryAfterMs?: number | undefined;
  /** Several problems found together, in order (see combineErrors). */
  readonly problems?: readonly AgentError[];
}

export class AgentError extends Error {
  readonly code: ErrorCode;
  readonly origin: Origin | undefined;
  readonly details: Record<string, unknown> | undefined;
  readonly retryAfterMs: number | undefined;
  /**
   * Every problem this error stands for, in order (every bad line of a configuration file, found
   * in one pass); just this error when it is one. The error's own code, origin and message are
   * the first problem's.
   */
  readonly problems: readonly AgentError[];

  constructor(code: ErrorCode, message: string, options: AgentErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AgentError';
    this.code = code;
    this.origin = options.origin;
    this.details = options.details;
    this.retryAfterMs = options.retryAfterMs;
    this.problems = options.problems && options.problems.length > 1 ? options.problems : [this];
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }

  get retryable(): boolean {
    return ERROR_CODES[this.code].retryable;
  }

  /**
   * One line for a terminal or a log: `file:line: VARIABLE: message [CODE]`; with several
   * problems, the first and how many more (toLines has them all).
   */
  toLine(): string {
    const where = this.origin ? `${formatOrigin(this.origin)}: ` : '';
    const line = `${where}${this.message} [${this.code}]`;
    const more = this.problems.length - 1;
    return more > 0 ? `${line} (and ${more} more ${more === 1 ? 'problem' : 'problems'})` : line;
  }

  /** One line per problem, in order. */
  toLines(): string[] {
    if (this.problems.length === 1) return [this.toLine()];
    return this.problems.map((p) => p.toLine());
  }
}

/**
 * One error for several problems found together (undefined for none, the problem itself for
 * one): its code, origin and message are the first's; `problems` holds them all, in the order
 * given.
 */
export function combineErrors(problems: readonly AgentError[]): AgentError | undefined {
  const all = problems.flatMap((p) => p.problems);
  const first = all[0];
  if (first === undefined) return undefined;
  if (all.length === 1) return first;
  return new AgentError(first.code, first.message, {
    ...(first.origin ? { origin: first.origin } : {}),
    problems: all,
  });
}

export function formatOrigin(o: Origin): string {
  if (o.line > 0) return `${o.file}:${o.line}: ${o.variable}`;
  return `${o.file}: ${o.variable}`;
}

/**
 * Wraps anything thrown into an AgentError, keeping an AgentError as it is. An error from the
 * system (it has an errno name such as EACCES or ENOSPC: a file, a directory, a socket) is
 * AGENT_E_IO saying what to do about it, never AGENT_E_INTERNAL: it is the host, not a bug.
 */
export function toAgentError(e: unknown, code: ErrorCode = 'AGENT_E_INTERNAL'): AgentError {
  if (e instanceof AgentError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  const errno = systemErrorCode(e);
  if (errno !== undefined && code === 'AGENT_E_INTERNAL') {
    const sys = e as NodeJS.ErrnoException;
    const message =
      sys.path !== undefined
        ? describeSystemError(`cannot ${sys.syscall ?? 'use'}`, sys.path, e)
        : `${msg}${systemErrorFix(errno) ? `; ${systemErrorFix(errno)}` : ''}`;
    return new AgentError('AGENT_E_IO', message, { cause: e });
  }
  return new AgentError(code, msg, { cause: e });
}

/** The errno name of an error from the system (`EACCES`), or undefined for anything else. */
export function systemErrorCode(e: unknown): string | undefined {
  if (!(e instanceof Error)) return undefined;
  const c = (e as NodeJS.ErrnoException).code;
  // Node's own codes (ERR_OSSL_…, ERR_INVALID_ARG_…) are not the system's.
  return typeof c === 'string' && /^E[A-Z0-9_]+$/.test(c) && !c.startsWith('ERR_') ? c : undefined;
}

const ERRNO_WORDS: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only filesystem',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in the system',
  ENOENT: 'no such file or directory',
  ENOTDIR: 'a part of the path is not a directory',
  EISDIR: 'is a directory',
  EEXIST: 'already exists',
  EBUSY: 'busy',
  EIO: 'input/output error',
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'name not found',
  EAI_AGAIN: 'name lookup failed for now',
  EPIPE: 'connection closed',
};

/**
 * `<what> <path>: <the error in words> (<ERRNO>); <what to do>`, e.g. "cannot open
 * /etc/certs/key.pem: permission denied (EACCES); running as uid 1000, not root: …".
 */
export function describeSystemError(what: string, p: string, e: unknown): string {
  const errno = systemErrorCode(e);
  if (errno === undefined) return `${what} ${p}: ${e instanceof Error ? e.message : String(e)}`;
  const fix = systemErrorFix(errno);
  return `${what} ${p}: ${ERRNO_WORDS[errno] ?? errno.toLowerCase()} (${errno})${fix ? `; ${fix}` : ''}`;
}

/** What to do about an error of the system, by its errno name; undefined when nothing general. */
export function systemErrorFix(errno: string): string | undefined {
  switch (errno) {
    case 'EACCES':
    case 'EPERM':
      return process.getuid?.() === 0
        ? 'as root this means an immutable attribute (lsattr), a read-only or root-squashed mount, or an AppArmor/SELinux denial'
        : `running as uid ${process.getuid?.() ?? '?'}, not root: run it as root (the systemd unit does), or give this user access`;
    case 'ENOSPC':
    case 'EDQUOT':
      return 'free some space';
    case 'EROFS':
      return 'remount it read-write, or choose another path';
    case 'EMFILE':
    case 'ENFILE':
      return "raise the unit's LimitNOFILE";
    default:
      return undefined;
  }
}
