import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  CERT_FILES,
  DEFAULT_SCP,
  DEFAULT_SECRET_PREFIX,
  DEFAULT_SSH,
  DEFAULT_START,
  DEFAULT_STATUS,
  DEFAULT_TRUST_DOMAIN,
  ILB_ROLES,
  bundleTar,
  connectKube,
  defaultIlbs,
  deregister,
  dnsEntries,
  fetchCerts,
  gatherAddresses,
  gatherBundle,
  gatherClusterEnv,
  parsePortSpecs,
  parseServiceRef,
  parseTemplate,
  prepareDir,
  register,
  renderEnvFile,
  renderKubedns10,
  setupVm,
  writeFiles,
  type AddressRequest,
  type BundleRequest,
  type EnvRequest,
  type IlbRole,
  type KubeApi,
  type RegisterResult,
  type WriteOutcome,
} from '../cluster/index';
import { parseCidr } from '../config/net';
import { parseDuration } from '../config/raw';
import { systemClock } from '../lib/clock';
import { AgentError, EXIT_OK } from '../lib/errors';
import { exec } from '../lib/exec';
import { HELP_OPTION, parseOptions, type CommandContext } from './context';

const TOP = `Usage: istio-node-agent cluster <verb> [options]

The cluster half of mesh expansion, run on a workstation with a kubeconfig (not as root; it
changes nothing on this host but the files it is asked to write):

  env                         cluster.env for every VM (service range, Citadel, DNS addresses)
  dns                         the DNS variables (and Istio 1.0's kubedns file) from the ILBs
  certs SERVICE_ACCOUNT       the bootstrap certificates from the istio.<sa> Secret, checked
  bundle VM_NAME              everything one VM needs, in one folder (or --tar archive)
  setup VM_NAME --host H      the bundle copied to the VM with ssh, placed, the agent started
  register SVC IP [name:]port…  add a VM's address to a selector-less Service
  deregister SVC IP           remove it

Common options:
  --kubeconfig FILE    instead of KUBECONFIG, ~/.kube/config or the in-cluster account
  --context NAME       instead of the kubeconfig's current context
  -n, --namespace NS   the workload namespace (default: the context's, else default)
  --json               print the result as JSON
  -h, --help           a verb's options

The RBAC each verb needs, and how each maps to Istio 1.0's setupMeshEx.sh: docs/cluster.md.
Exit codes: 0 ok, 1 runtime failure, 2 usage, 78 configuration error (kubeconfig).`;

const COMMON = {
  ...HELP_OPTION,
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  json: { type: 'boolean' },
} as const;

const ADDRESS_OPTIONS = {
  'istio-namespace': { type: 'string' },
  'dns-service': { type: 'string' },
  'pilot-service': { type: 'string' },
  'citadel-service': { type: 'string' },
  'mixer-service': { type: 'string' },
  'dns-server': { type: 'string' },
  'pilot-ip': { type: 'string' },
  'citadel-ip': { type: 'string' },
  'mixer-ip': { type: 'string' },
  wait: { type: 'string' },
  poll: { type: 'string' },
} as const;

const ENV_OPTIONS = {
  ...ADDRESS_OPTIONS,
  'service-cidr': { type: 'string' },
  'cp-auth': { type: 'string' },
  'citadel-address': { type: 'string' },
  'no-dns': { type: 'boolean' },
} as const;

const CERT_OPTIONS = {
  'root-only': { type: 'boolean' },
  'trust-domain': { type: 'string' },
  'secret-prefix': { type: 'string' },
} as const;

const BUNDLE_OPTIONS = {
  ...ENV_OPTIONS,
  ...CERT_OPTIONS,
  'service-account': { type: 'string', short: 's' },
  service: { type: 'string' },
  ports: { type: 'string' },
} as const;

const COMMON_HELP = `
Common: --kubeconfig FILE, --context NAME, -n/--namespace NS, --json, -h/--help.`;

const ADDRESS_HELP = `
Addresses (Istio 1.0's internal load balancers, mesh-expansion.yaml), looked up and waited for:
  --istio-namespace NS       the control plane's namespace (default istio-system)
  --dns-service [NS/]NAME    kube-dns for VMs (default kube-system/dns-ilb)
  --pilot-service [NS/]NAME  (default istio-pilot-ilb), --citadel-service (citadel-ilb),
  --mixer-service (mixer-ilb), in the Istio namespace unless NS/ is given
  --dns-server IP[:PORT], --pilot-ip IP, --citadel-ip IP, --mixer-ip IP
                             give an address by hand instead (no lookup)
  --wait DURATION            how long to wait for load-balancer addresses (default 10m, as 1.0)
  --poll DURATION            how often to look (default 5s)`;

const ENV_HELP = `${ADDRESS_HELP}

cluster.env:
  --service-cidr CIDR[,CIDR] the service range (default: from the ServiceCIDR API, else from a
                             dry-run Service the API server refuses with its range)
  --cp-auth MUTUAL_TLS|NONE  ISTIO_CP_AUTH (default MUTUAL_TLS, as 1.0)
  --citadel-address H:P      CITADEL_ADDRESS (default: the citadel ILB's address and port)
  --no-dns                   no DNS variables (the agent then leaves the VM's DNS alone)`;

const CERT_HELP = `
Certificates (the istio.<sa> Secret Citadel keeps):
  --trust-domain DOMAIN      the SPIFFE trust domain checked in the SAN (default cluster.local)
  --secret-prefix PREFIX     1.0's ISTIO_SECRET_PREFIX (default istio.)
  --root-only                root-cert.pem only (GCE VMs: identity from the metadata server)`;

const USAGES: Record<string, string> = {
  env: `Usage: istio-node-agent cluster env [-o DIR] [--force] [options]

Writes cluster.env (Istio 1.0: setupMeshEx.sh generateClusterEnv) to DIR, or prints it:
ISTIO_SERVICE_CIDR, ISTIO_SYSTEM_NAMESPACE, ISTIO_CP_AUTH, CITADEL_ADDRESS and the DNS
variables, each with a comment saying where it came from. The agent's own parser checks it.

  -o, --output DIR           write DIR/cluster.env (0644); an existing different file needs --force
  --force                    replace an existing file (never through a symlink)
${ENV_HELP}
${COMMON_HELP}`,
  dns: `Usage: istio-node-agent cluster dns [--kubedns FILE [--force]] [options]

Finds the addresses VMs use for kube-dns, Pilot, Citadel and Mixer (Istio 1.0:
setupMeshEx.sh generateDnsmasq), waiting for their load-balancer addresses with a progress line
per Service, and prints the agent's variables ISTIO_DNS_SERVER, ISTIO_PILOT_IP,
ISTIO_CITADEL_IP, ISTIO_MIXER_IP (for cluster.env).

  --kubedns FILE             also write Istio 1.0's kubedns file (for /etc/dnsmasq.d) to FILE
  --cluster-domain DOMAIN    its cluster domain (default cluster.local)
  --force                    replace an existing FILE
${ADDRESS_HELP}
${COMMON_HELP}`,
  certs: `Usage: istio-node-agent cluster certs SERVICE_ACCOUNT -o DIR [--force] [options]

Writes root-cert.pem, cert-chain.pem and key.pem (0600) from the Secret istio.SERVICE_ACCOUNT
in the namespace (Istio 1.0: setupMeshEx.sh machineCerts), after checking them: the key
matches the chain, the chain verifies to the root, the SAN is
spiffe://<trust domain>/ns/<namespace>/sa/<account>, and how long it stays valid.

  -o, --output DIR           where to write (made 0700 when missing)
  --force                    replace different existing files (never through a symlink)
${CERT_HELP}
${COMMON_HELP}`,
  bundle: `Usage: istio-node-agent cluster bundle VM_NAME -o DIR [--tar] [options]

Everything one VM needs (Istio 1.0: the files of setupMeshEx.sh machineSetup): cluster.env,
sidecar.env, root-cert.pem, cert-chain.pem, key.pem, install.sh (places them as root) and
INSTALL (what to do). The folder is 0700, secrets 0600.

  -o, --output DIR           the folder (or with --tar the archive file)
  --tar                      one tar archive instead: VM_NAME/ and the files, owned by root
  --force                    replace different existing files
  -s, --service-account SA   the VM's service account (default: default), in -n's namespace
  --service NAME             ISTIO_SERVICE in sidecar.env
  --ports P[,P…]|*           ISTIO_INBOUND_PORTS in sidecar.env: the VM's service ports
${ENV_HELP}
${CERT_HELP}
${COMMON_HELP}`,
  setup: `Usage: istio-node-agent cluster setup VM_NAME --host [USER@]HOST [options]

Makes VM_NAME's bundle and sets the VM up (Istio 1.0: setupMeshEx.sh machineSetup): copies the
bundle with scp (retried, 1.0's 10 tries 10 s apart), installs the package if --deb is given,
places the files as root (root-owned; files 0644, key.pem 0600, directories 0755), removes the
copy, starts the agent (restarts it when its files changed), waits for
\`istio-node-agent status\` to say ready and prints it. Running it again changes nothing.

  --host [USER@]HOST         the VM, as ssh reaches it
  --ssh CMD                  runs a command on the VM: CMD HOST COMMAND, or with {host} and
                             {command} placed (default: ISTIO_RUN, else
                             "${DEFAULT_SSH}")
  --scp CMD                  copies to the VM: CMD FILES… HOST:DIR/, or with {src}, {host},
                             {dest} placed (default: ISTIO_CP, else
                             "${DEFAULT_SCP}")
  --remote-dir DIR           where the bundle is copied on the VM (default istio-node-agent-VM_NAME
                             in the login directory; removed afterwards)
  --sudo CMD                 prefix for commands as root (default "sudo -n"; none for root@)
  --deb FILE                 copy this package and install it first
  --install-command CMD      how (default "apt-get install -y")
  --replace-certs            replace certificates already on the VM
  --remote-root DIR          place the files under DIR on the VM (an image; tests)
  --start-command CMD        run as root on the VM, {action} = start or restart
                             (default "${DEFAULT_START}")
  --status-command CMD       default "${DEFAULT_STATUS}"
  --copy-attempts N          default 10;  --copy-delay DURATION  default 10s
  --ready-timeout DURATION   how long to wait for ready (default 5m)
  -s, --service-account SA, --service NAME, --ports P[,P…]: as for bundle
${ENV_HELP}
${CERT_HELP}
${COMMON_HELP}`,
  register: `Usage: istio-node-agent cluster register SERVICE IP [name:]port… [options]

Registers a VM's address for a Service (Istio 1.0: istioctl register): creates the
selector-less Service if it is missing (ports {name, port}; a bare port is named as 1.0 did:
80 and 8080 http, 443 https, 3306 mysql, else its number), adds IP to the Endpoints subset with
the same ports (or a new subset), and writes the matching EndpointSlices. Conflicting writes by
others are retried with the fresh object, never overwritten.

  -l, --label K=V            on the Service and Endpoints when created (repeatable, or K=V,K=V)
  -a, --annotation K=V       likewise
  -s, --serviceaccount SA    alpha.istio.io/kubernetes-serviceaccounts (default: default)
${COMMON_HELP}`,
  deregister: `Usage: istio-node-agent cluster deregister SERVICE IP [options]

Removes IP from the Service's Endpoints (and subsets left empty) and from its EndpointSlices
(Istio 1.0: istioctl deregister). The Service stays. An address that is not there: nothing to do.
${COMMON_HELP}`,
};

type Values = Record<string, string | boolean | string[] | undefined>;

function usage(verb: string, msg: string): AgentError {
  return new AgentError('AGENT_E_USAGE', `${msg}\n${USAGES[verb] ?? TOP}`);
}

function str(v: Values, k: string): string | undefined {
  const x = v[k];
  return typeof x === 'string' ? x : undefined;
}

function durationOf(verb: string, v: Values, k: string, defMs: number): number {
  const text = str(v, k);
  if (text === undefined) return defMs;
  const ms = parseDuration(text);
  if (ms === undefined) throw usage(verb, `--${k} "${text}" is not a duration (e.g. 30s, 10m)`);
  return ms;
}

/** An IP address, strictly (no leading zeros, no zone). */
function ipOf(verb: string, flag: string, text: string): string {
  const c = parseCidr(text);
  if (typeof c === 'string' || text.includes('/') || text.includes('%'))
    throw usage(verb, `${flag} "${text}" is not an IP address`);
  return c.address;
}

async function connect(v: Values, ctx: CommandContext): Promise<KubeApi> {
  return connectKube({
    kubeconfig: str(v, 'kubeconfig'),
    context: str(v, 'context'),
    env: ctx.env,
  });
}

function namespaceOf(v: Values, api: KubeApi): string {
  return str(v, 'namespace') ?? api.target.namespace;
}

function addressRequest(
  verb: string,
  v: Values,
  ctx: CommandContext,
): AddressRequest & { istioNamespace: string } {
  const istioNamespace = str(v, 'istio-namespace') ?? 'istio-system';
  const ilbs = defaultIlbs(istioNamespace);
  for (const role of ILB_ROLES) {
    const text = str(v, `${role}-service`);
    if (text === undefined) continue;
    const ref = parseServiceRef(text, role === 'dns' ? 'kube-system' : istioNamespace);
    if (!ref) throw usage(verb, `--${role}-service "${text}" is not [NAMESPACE/]NAME`);
    ilbs[role] = ref;
  }
  const given: Partial<Record<IlbRole, { ip: string; port: number; flag: string }>> = {};
  const dnsServer = str(v, 'dns-server');
  if (dnsServer !== undefined) {
    const m = /^\[([^\]]+)\]:(\d+)$/.exec(dnsServer) ?? /^([^:]+):(\d+)$/.exec(dnsServer);
    const ip = ipOf(verb, '--dns-server', m ? m[1]! : dnsServer);
    const port = m ? Number(m[2]) : 53;
    if (!(port >= 1 && port <= 65535)) throw usage(verb, `--dns-server "${dnsServer}": bad port`);
    given.dns = { ip, port, flag: '--dns-server' };
  }
  const defaults: Record<Exclude<IlbRole, 'dns'>, number> = {
    pilot: 15011,
    citadel: 8060,
    mixer: 15004,
  };
  for (const role of ['pilot', 'citadel', 'mixer'] as const) {
    const text = str(v, `${role}-ip`);
    if (text !== undefined)
      given[role] = {
        ip: ipOf(verb, `--${role}-ip`, text),
        port: defaults[role],
        flag: `--${role}-ip`,
      };
  }
  return {
    istioNamespace,
    ilbs,
    given,
    wait: {
      timeoutMs: durationOf(verb, v, 'wait', 10 * 60_000),
      intervalMs: Math.max(100, durationOf(verb, v, 'poll', 5000)),
      clock: systemClock,
      progress: (line) => {
        ctx.err(`${line}\n`);
      },
    },
  };
}

/** The flags of an env request, checked before any cluster call; the namespace comes after. */
function envRequest(verb: string, v: Values, ctx: CommandContext): Omit<EnvRequest, 'namespace'> {
  const cpAuth = str(v, 'cp-auth') ?? 'MUTUAL_TLS';
  if (cpAuth !== 'MUTUAL_TLS' && cpAuth !== 'NONE')
    throw usage(verb, `--cp-auth must be MUTUAL_TLS or NONE, not "${cpAuth}"`);
  let serviceCidr: string[] | undefined;
  const cidrText = str(v, 'service-cidr');
  if (cidrText !== undefined) {
    serviceCidr = [];
    for (const part of cidrText
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '')) {
      const c = parseCidr(part);
      if (typeof c === 'string') throw usage(verb, `--service-cidr: ${c}`);
      serviceCidr.push(c.text);
    }
    if (serviceCidr.length === 0) throw usage(verb, '--service-cidr is empty');
  }
  const citadelAddress = str(v, 'citadel-address');
  if (
    citadelAddress !== undefined &&
    !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(citadelAddress)
  )
    throw usage(verb, `--citadel-address "${citadelAddress}" is not HOST:PORT`);
  return {
    ...addressRequest(verb, v, ctx),
    cpAuth,
    cpAuthGiven: str(v, 'cp-auth') !== undefined,
    serviceCidr,
    citadelAddress,
    dns: v['no-dns'] !== true,
  };
}

/** The bundle's request; checks everything that needs no cluster first. */
function bundleRequest(
  verb: string,
  v: Values,
  ctx: CommandContext,
  vm: string,
): Omit<BundleRequest, 'namespace'> {
  const ports = str(v, 'ports');
  if (ports !== undefined && !/^(\*|\d{1,5}(,\d{1,5})*)$/.test(ports))
    throw usage(verb, `--ports "${ports}" is not a list of port numbers (8080,9090) or *`);
  return {
    ...envRequest(verb, v, ctx),
    vm,
    serviceAccount: str(v, 'service-account') ?? 'default',
    secretPrefix: str(v, 'secret-prefix') ?? DEFAULT_SECRET_PREFIX,
    trustDomain: str(v, 'trust-domain') ?? DEFAULT_TRUST_DOMAIN,
    rootOnly: v['root-only'] === true,
    service: str(v, 'service'),
    inboundPorts: ports,
    now: Date.now(),
  };
}

function checkVmName(verb: string, vm: string | undefined): string {
  if (vm === undefined) throw usage(verb, 'VM_NAME is required');
  if (!/^[A-Za-z0-9]([A-Za-z0-9._-]{0,62})$/.test(vm))
    throw usage(verb, `VM_NAME "${vm}" must be letters, digits, '.', '_' or '-' (at most 63)`);
  return vm;
}

function outcomes(dir: string, r: Record<string, WriteOutcome>): string {
  return Object.entries(r)
    .map(([f, o]) => `${path.join(dir, f)}: ${o}`)
    .join('\n');
}

function printJson(ctx: CommandContext, data: unknown): void {
  ctx.out(JSON.stringify(data, null, 2) + '\n');
}

async function envCmd(ctx: CommandContext, v: Values, pos: string[]): Promise<number> {
  if (pos.length > 0) throw usage('env', `unexpected argument "${pos[0]}"`);
  const req = envRequest('env', v, ctx);
  const api = await connect(v, ctx);
  const env = await gatherClusterEnv(api, { ...req, namespace: namespaceOf(v, api) });
  for (const n of env.notes) ctx.err(`note: ${n}\n`);
  const dir = str(v, 'output');
  let written: Record<string, WriteOutcome> | undefined;
  if (dir !== undefined) {
    await prepareDir(dir, 0o755);
    written = await writeFiles(
      dir,
      [{ name: 'cluster.env', content: env.text, mode: 0o644 }],
      v.force === true,
    );
  }
  if (v.json)
    printJson(ctx, {
      file: dir && path.join(dir, 'cluster.env'),
      outcome: written?.['cluster.env'],
      variables: env.entries,
      notes: env.notes,
    });
  else if (written) ctx.out(outcomes(dir!, written) + '\n');
  else ctx.out(env.text);
  return EXIT_OK;
}

async function dnsCmd(ctx: CommandContext, v: Values, pos: string[]): Promise<number> {
  if (pos.length > 0) throw usage('dns', `unexpected argument "${pos[0]}"`);
  const domain = str(v, 'cluster-domain') ?? 'cluster.local';
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(domain))
    throw usage('dns', `--cluster-domain "${domain}" is not a domain`);
  const r = addressRequest('dns', v, ctx);
  const api = await connect(v, ctx);
  const addresses = await gatherAddresses(api, ILB_ROLES, r);
  const entries = dnsEntries(addresses);
  const kubedns = str(v, 'kubedns');
  let written: Record<string, WriteOutcome> | undefined;
  if (kubedns !== undefined) {
    const dir = path.dirname(kubedns);
    await prepareDir(dir, 0o755);
    written = await writeFiles(
      dir,
      [
        {
          name: path.basename(kubedns),
          content: renderKubedns10(addresses, r.istioNamespace, domain),
          mode: 0o644,
        },
      ],
      v.force === true,
    );
    if (!v.json) ctx.err(outcomes(dir, written) + '\n');
  }
  if (v.json)
    printJson(ctx, {
      addresses,
      variables: entries,
      kubedns: kubedns && { file: kubedns, outcome: written?.[path.basename(kubedns)] },
    });
  else
    ctx.out(
      renderEnvFile(
        [`DNS variables for cluster.env, from context "${api.target.context}"`],
        entries,
      ),
    );
  return EXIT_OK;
}

async function certsCmd(ctx: CommandContext, v: Values, pos: string[]): Promise<number> {
  const [sa, ...extra] = pos;
  if (sa === undefined) throw usage('certs', 'SERVICE_ACCOUNT is required');
  if (extra.length > 0) throw usage('certs', `unexpected argument "${extra[0]}"`);
  const dir = str(v, 'output');
  if (dir === undefined) throw usage('certs', '-o DIR is required');
  const api = await connect(v, ctx);
  const { set, summary } = await fetchCerts(api, {
    namespace: namespaceOf(v, api),
    serviceAccount: sa,
    secretPrefix: str(v, 'secret-prefix') ?? DEFAULT_SECRET_PREFIX,
    trustDomain: str(v, 'trust-domain') ?? DEFAULT_TRUST_DOMAIN,
    rootOnly: v['root-only'] === true,
    now: Date.now(),
  });
  await prepareDir(dir, 0o700);
  const content: Record<(typeof CERT_FILES)[number], string | undefined> = {
    'root-cert.pem': set.rootPem,
    'cert-chain.pem': set.chainPem,
    'key.pem': set.keyPem,
  };
  const files = CERT_FILES.filter((f) => content[f] !== undefined).map((f) => ({
    name: f,
    content: content[f]!,
    mode: f === 'key.pem' ? 0o600 : 0o644,
  }));
  const written = await writeFiles(dir, files, v.force === true);
  if (v.json) printJson(ctx, { ...summary, dir, files: written });
  else {
    ctx.out(outcomes(dir, written) + '\n');
    ctx.out(
      `${summary.identity ?? `root ${summary.rootSubject}`} (Secret ${summary.secret}): ${summary.validity}\n`,
    );
  }
  return EXIT_OK;
}

async function bundleCmd(ctx: CommandContext, v: Values, pos: string[]): Promise<number> {
  const vm = checkVmName('bundle', pos[0]);
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
  const vm = checkVmName('setup', pos[0]);
  if (pos.length > 1) throw usage('setup', `unexpected argument "${pos[1]}"`);
  const host = str(v, 'host');
  if (host === undefined || !/^([A-Za-z0-9._-]+@)?[A-Za-z0-9.:_[\]-]+$/.test(host))
    throw usage('setup', '--host [USER@]HOST is required');
  const attemptsText = str(v, 'copy-attempts') ?? '10';
  if (!/^\d{1,3}$/.test(attemptsText) || Number(attemptsText) < 1)
    throw usage('setup', `--copy-attempts "${attemptsText}" is not a number from 1`);
  const sudoText = str(v, 'sudo') ?? (host.startsWith('root@') ? '' : 'sudo -n');
  const ssh = parseTemplate(str(v, 'ssh') ?? (ctx.env.ISTIO_RUN || DEFAULT_SSH));
  const scp = parseTemplate(str(v, 'scp') ?? (ctx.env.ISTIO_CP || DEFAULT_SCP));
  if (ssh.length === 0 || scp.length === 0) throw usage('setup', '--ssh and --scp cannot be empty');
  const req = bundleRequest('setup', v, ctx, vm);
  const readyTimeoutMs = durationOf('setup', v, 'ready-timeout', 5 * 60_000);
  const copyDelayMs = durationOf('setup', v, 'copy-delay', 10_000);
  const pollMs = Math.max(100, durationOf('setup', v, 'poll', 5000));
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
        ssh,
        scp,
        remoteDir: str(v, 'remote-dir') ?? `istio-node-agent-${vm}`,
        remoteRoot: str(v, 'remote-root'),
        sudo: parseTemplate(sudoText),
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

function keyValues(verb: string, flag: string, list: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of (list ?? []).flatMap((s) => s.split(','))) {
    if (item === '') continue;
    const i = item.indexOf('=');
    const k = i < 0 ? item : item.slice(0, i);
    if (!/^([a-z0-9.-]+\/)?[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/.test(k))
      throw usage(verb, `${flag} "${item}": "${k}" is not a label or annotation key`);
    out[k] = i < 0 ? '' : item.slice(i + 1);
  }
  return out;
}

function serviceName(verb: string, name: string | undefined): string {
  if (name === undefined) throw usage(verb, 'SERVICE is required');
  if (!/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/.test(name))
    throw usage(verb, `SERVICE "${name}" is not a Service name (lower-case DNS label)`);
  return name;
}

function printRegister(ctx: CommandContext, what: string, r: RegisterResult, json: boolean): void {
  if (json) {
    printJson(ctx, r);
    return;
  }
  const s = r.slices;
  const slices = [
    s.created.length && `created ${s.created.join(', ')}`,
    s.updated.length && `updated ${s.updated.join(', ')}`,
    s.deleted.length && `deleted ${s.deleted.join(', ')}`,
    s.unchanged.length && `unchanged ${s.unchanged.join(', ')}`,
  ].filter(Boolean);
  ctx.out(`${what}\n`);
  ctx.out(
    `  Service: ${r.service}${r.ports.length ? ` (ports ${r.ports.map((p) => `${p.name}:${p.port}`).join(', ')})` : ''}\n`,
  );
  ctx.out(`  Endpoints: ${r.endpoints}; addresses now: ${r.addresses.join(', ') || 'none'}\n`);
  ctx.out(`  EndpointSlices: ${slices.join('; ') || 'none'}\n`);
  if (r.conflicts > 0)
    ctx.out(`  ${r.conflicts} conflicting change(s) by others, retried with the fresh objects\n`);
}

async function registerCmd(ctx: CommandContext, v: Values, pos: string[]): Promise<number> {
  const [svcArg, ipArg, ...portArgs] = pos;
  const service = serviceName('register', svcArg);
  if (ipArg === undefined) throw usage('register', 'IP is required');
  const ip = ipOf('register', 'IP', ipArg);
  const ports = parsePortSpecs(portArgs);
  if (typeof ports === 'string') throw usage('register', ports);
  const labels = keyValues('register', '-l', v.label as string[] | undefined);
  const annotations = keyValues('register', '-a', v.annotation as string[] | undefined);
  const sa = str(v, 'serviceaccount') ?? 'default';
  const api = await connect(v, ctx);
  const namespace = namespaceOf(v, api);
  const r = await register(
    api,
    { namespace, service, ip, ports, labels, annotations, serviceAccount: sa },
    { clock: systemClock, random: Math.random },
  );
  printRegister(ctx, `registered ${ip} in ${namespace}/${service}`, r, v.json === true);
  return EXIT_OK;
}

async function deregisterCmd(ctx: CommandContext, v: Values, pos: string[]): Promise<number> {
  const [svcArg, ipArg, ...extra] = pos;
  const service = serviceName('deregister', svcArg);
  if (ipArg === undefined) throw usage('deregister', 'IP is required');
  if (extra.length > 0) throw usage('deregister', `unexpected argument "${extra[0]}"`);
  const ip = ipOf('deregister', 'IP', ipArg);
  const api = await connect(v, ctx);
  const namespace = namespaceOf(v, api);
  const r = await deregister(
    api,
    { namespace, service, ip },
    { clock: systemClock, random: Math.random },
  );
  const what =
    r.endpoints === 'updated'
      ? `deregistered ${ip} from ${namespace}/${service}`
      : `${ip} is not registered in ${namespace}/${service}: nothing to do`;
  printRegister(ctx, what, r, v.json === true);
  return EXIT_OK;
}

const OUTPUT = { output: { type: 'string', short: 'o' }, force: { type: 'boolean' } } as const;

const VERBS = {
  env: { options: { ...COMMON, ...OUTPUT, ...ENV_OPTIONS }, run: envCmd },
  dns: {
    options: {
      ...COMMON,
      ...ADDRESS_OPTIONS,
      kubedns: { type: 'string' },
      'cluster-domain': { type: 'string' },
      force: { type: 'boolean' },
    },
    run: dnsCmd,
  },
  certs: { options: { ...COMMON, ...OUTPUT, ...CERT_OPTIONS }, run: certsCmd },
  bundle: {
    options: { ...COMMON, ...OUTPUT, ...BUNDLE_OPTIONS, tar: { type: 'boolean' } },
    run: bundleCmd,
  },
  setup: { options: { ...COMMON, ...BUNDLE_OPTIONS, ...SETUP_OPTIONS }, run: setupCmd },
  register: {
    options: {
      ...COMMON,
      label: { type: 'string', short: 'l', multiple: true },
      annotation: { type: 'string', short: 'a', multiple: true },
      serviceaccount: { type: 'string', short: 's' },
    },
    run: registerCmd,
  },
  deregister: { options: COMMON, run: deregisterCmd },
} as const;

export async function run(ctx: CommandContext): Promise<number> {
  const [verb, ...rest] = ctx.argv;
  if (verb === undefined || verb === '--help' || verb === '-h' || verb === 'help') {
    ctx.out(TOP + '\n');
    return verb === undefined ? 2 : EXIT_OK;
  }
  if (!Object.hasOwn(VERBS, verb)) throw usage('', `unknown verb "${verb}"`);
  const spec = VERBS[verb as keyof typeof VERBS];
  const { values, positionals } = parseOptions(rest, spec.options, USAGES[verb]!, {
    positionals: Infinity,
  });
  if (values.help) {
    ctx.out(`${USAGES[verb]!}\n`);
    return EXIT_OK;
  }
  return spec.run(ctx, values as Values, positionals);
}

/** For tests and docs: every verb's usage text. */
export const CLUSTER_USAGES: Readonly<Record<string, string>> = USAGES;
