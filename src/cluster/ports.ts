/**
 * Ports of a registered VM service: `[name:]port` arguments with Istio 1.0's names for a bare
 * port (`istioctl register`), and their reconciliation with a Service that already exists.
 * Pure.
 */
import { DNS_1123_LABEL } from './inputs';

export interface NamedPort {
  readonly name: string;
  readonly port: number;
}

/** A port as given on the command line. */
export interface RequestedPort extends NamedPort {
  /** Named by the user (`name:port`), not guessed from the number. */
  readonly explicit: boolean;
}

/** Istio 1.0's guesses for a port given without a name; any other port is named by its number. */
export const PORT_NAMES: Readonly<Record<number, string>> = {
  80: 'http',
  443: 'https',
  3306: 'mysql',
  8080: 'http',
};

/** A Kubernetes port name: a DNS-1123 label (lower case, digits, `-`, at most 63). */
const PORT_NAME = DNS_1123_LABEL;

/** Parses one `[name:]port` argument; returns an error text instead of throwing. */
export function parsePortSpec(spec: string): RequestedPort | string {
  const colon = spec.lastIndexOf(':');
  const name = colon < 0 ? undefined : spec.slice(0, colon);
  const num = colon < 0 ? spec : spec.slice(colon + 1);
  if (!/^\d{1,5}$/.test(num) || Number(num) < 1 || Number(num) > 65535) {
    return `"${spec}": the port must be a number from 1 to 65535 ([name:]port)`;
  }
  const port = Number(num);
  if (name === undefined || name === '')
    return { name: PORT_NAMES[port] ?? String(port), port, explicit: false };
  if (!PORT_NAME.test(name)) {
    return `"${spec}": the port name "${name}" must be lower-case letters, digits and '-' (a DNS label)`;
  }
  return { name, port, explicit: true };
}

/** Parses every argument; duplicate numbers or names are an error (a Service allows neither). */
export function parsePortSpecs(specs: readonly string[]): RequestedPort[] | string {
  const out: RequestedPort[] = [];
  for (const s of specs) {
    const p = parsePortSpec(s);
    if (typeof p === 'string') return p;
    if (out.some((q) => q.port === p.port)) return `port ${p.port} is given twice`;
    if (out.some((q) => q.name === p.name)) {
      return `two ports are named "${p.name}"; name them (name:port), names must differ`;
    }
    out.push(p);
  }
  if (out.length === 0) return 'at least one [name:]port is needed';
  return out;
}

export interface PortPlan {
  /** The ports of the endpoints, named as the Service names them. */
  readonly ports: readonly NamedPort[];
  /** Requested ports the Service lacks; `register` adds them to the Service. */
  readonly addToService: readonly NamedPort[];
}

/**
 * Fits the requested ports to an existing Service's. kube-proxy and Pilot pair endpoint ports
 * with Service ports by name, so a port the Service already has takes the Service's name; an
 * explicit name that differs from the Service's is an error. A port the Service lacks is added
 * (unless its name is taken by another port there).
 */
export function planPorts(
  servicePorts: readonly { name?: string; port: number }[],
  requested: readonly RequestedPort[],
): PortPlan | string {
  const ports: NamedPort[] = [];
  const add: NamedPort[] = [];
  for (const r of requested) {
    const have = servicePorts.find((s) => s.port === r.port);
    if (have) {
      const name = have.name ?? '';
      if (r.explicit && name !== r.name) {
        return `the Service names port ${r.port} "${name}", not "${r.name}"; use ${name === '' ? String(r.port) : `${name}:${r.port}`} or leave the name out`;
      }
      ports.push({ name, port: r.port });
      continue;
    }
    if (servicePorts.some((s) => (s.name ?? '') === r.name)) {
      return `the Service already has a port named "${r.name}" (not ${r.port}); name port ${r.port} differently (name:${r.port})`;
    }
    ports.push({ name: r.name, port: r.port });
    add.push({ name: r.name, port: r.port });
  }
  return { ports, addToService: add };
}

/** The port numbers as a sorted list: the identity of an Endpoints subset (1.0's samePorts). */
export function portKey(ports: readonly { port: number }[]): string {
  return [...ports.map((p) => p.port)].sort((a, b) => a - b).join(',');
}
