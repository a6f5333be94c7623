/**
 * `dev`'s command line, parsed and validated before anything starts (no CA listening, no file
 * written): pure. The options become the agent's variables (`--ttl` is WORKLOAD_CERT_TTL,
 * `--api` CA_API, `--key` WORKLOAD_KEY_ALGORITHM) and go through the same readers and bounds as
 * the files, so `dev` and `run` accept the same values; a bad one is AGENT_E_CONFIG_VALUE (exit
 * 78) naming the option, every bad option at once.
 */
import * as path from 'node:path';
import { buildConfig, RawEnv, type AgentConfig } from '../config/index';
import { HELP_OPTION, parseOptions } from './context';

export const DEV_USAGE = `Usage: istio-node-agent dev [--state-dir DIR] [--ttl 60s] [--api HandleCSR|CreateCertificate]
                            [--key RSA|ECDSA] [--once] [--json]

Runs the agent against an embedded Citadel-compatible CA on 127.0.0.1: makes a
bootstrap certificate, lets the agent replace it with one for a key it made,
and renews it every ~half TTL so rotation shows within a minute. Changes nothing
on the host (no iptables, no DNS, no sidecar) and needs no root. State lives in
--state-dir (default ./.dev-state); \`status --state-dir DIR/agent\` shows it.
The monitoring endpoint takes a free loopback port (ISTIO_AGENT_MONITORING_ADDR
names another); the start-up banner says which. Ctrl-C stops it.

  --ttl    lifetime of the workload certificates (default 60s; at least 60s and at
           most 8760h, as WORKLOAD_CERT_TTL)
  --api    the CA's API (CA_API; default HandleCSR)
  --key    the workload key (WORKLOAD_KEY_ALGORITHM; default RSA)
  --once   exit 0 after the first certificate is issued
  --json   JSON log records instead of readable lines
Exit codes: 0 ok, 1 failure, 2 usage, 78 a bad option value.`;

/** Where a value given on the command line came from, in messages. */
const COMMAND_LINE = 'command line';

/** The identity dev's bootstrap certificate (and so its workload certificate) names. */
export const DEV_IDENTITY = 'spiffe://cluster.local/ns/default/sa/dev-vm';

export interface DevOptions {
  readonly help: boolean;
  /** Absolute. */
  readonly stateDir: string;
  /** --ttl as given (default 60s), and in ms. */
  readonly ttl: string;
  readonly ttlMs: number;
  readonly api: AgentConfig['ca']['api'];
  readonly keyAlgorithm: AgentConfig['ca']['keyAlgorithm'];
  readonly once: boolean;
  readonly json: boolean;
}

/**
 * Parses and validates dev's arguments. Throws AGENT_E_USAGE (exit 2) for an unknown option, a
 * missing value or an extra argument, and AGENT_E_CONFIG_VALUE (exit 78) for bad values, all of
 * them together. `cwd` resolves --state-dir.
 */
export function parseDevOptions(argv: readonly string[], cwd = process.cwd()): DevOptions {
  const { values } = parseOptions(
    argv,
    {
      ...HELP_OPTION,
      'state-dir': { type: 'string' },
      ttl: { type: 'string' },
      api: { type: 'string' },
      key: { type: 'string' },
      once: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    DEV_USAGE,
  );
  const given = {
    stateDir: path.resolve(cwd, values['state-dir'] ?? '.dev-state'),
    ttl: values.ttl ?? '60s',
    api: values.api,
    keyAlgorithm: values.key,
  };
  // Validated as the variables they become, by the same readers as the files.
  const config = devConfig(given, '127.0.0.1:8060');
  return {
    help: values.help === true,
    stateDir: given.stateDir,
    ttl: given.ttl,
    ttlMs: config.ca.certTtlMs,
    api: config.ca.api,
    keyAlgorithm: config.ca.keyAlgorithm,
    once: values.once === true,
    json: values.json === true,
  };
}

/**
 * The agent's configuration in dev: the embedded CA at `caAddress`, certificates and state under
 * the state directory, capture, DNS and the sidecar off, the first CSR at once. Pure; throws
 * every bad option value together (AGENT_E_CONFIG_VALUE naming the option).
 */
export function devConfig(
  opts: {
    readonly stateDir: string;
    readonly ttl: string;
    readonly api?: string | undefined;
    readonly keyAlgorithm?: string | undefined;
    /** ISTIO_AGENT_MONITORING_ADDR (default: none, the endpoint off). */
    readonly monitoringAddr?: string | undefined;
  },
  caAddress: string,
): AgentConfig {
  const raw = new RawEnv();
  const fixed = (k: string, v: string): void => {
    raw.set(k, v, 'dev', 0);
  };
  const option = (k: string, v: string | undefined, flag: string): void => {
    if (v !== undefined) raw.set(k, v, COMMAND_LINE, 0, flag);
  };
  fixed('CITADEL_ADDRESS', caAddress);
  fixed('CITADEL_SERVER_NAME', 'istio-citadel');
  fixed('CITADEL_ENV', 'onprem');
  option('CA_API', opts.api, '--api');
  option('WORKLOAD_KEY_ALGORITHM', opts.keyAlgorithm, '--key');
  option('WORKLOAD_CERT_TTL', opts.ttl, '--ttl');
  fixed('CERTS_DIR', path.join(opts.stateDir, 'certs'));
  fixed('ISTIO_AGENT_STATE_DIR', path.join(opts.stateDir, 'agent'));
  fixed('ISTIO_CAPTURE', 'false');
  fixed('SIDECAR_MODE', 'none');
  fixed('ISTIO_AGENT_MONITORING_ADDR', opts.monitoringAddr ?? 'off');
  // One agent, not a fleet: the first CSR goes out at once.
  fixed('CERT_FIRST_CSR_JITTER', '0');
  return buildConfig(raw, { cluster: '(dev)', sidecar: '(dev)' });
}
