/**
 * `cluster bundle` (the files of Istio 1.0's `machineSetup`, for one VM): cluster.env,
 * sidecar.env, the bootstrap certificates, `install.sh` that places them as root, and a short
 * INSTALL text. Pure: the folder's files from the data the other commands fetched.
 */
import type { CertSet, CertSummary } from './certs';
import { checkAgentAccepts, renderEnvFile, type EnvEntry } from './envfile';
import type { OutFile } from './output';
import { tarArchive } from './tar';

export const CONFIG_DIR = '/var/lib/istio/envoy';
export const CERTS_DIR = '/etc/certs';
export const UNIT = 'istio-auth-node-agent';

export interface SidecarEnvInput {
  readonly vm: string;
  /** The workload's namespace (the service account's). */
  readonly namespace: string;
  readonly service?: string;
  /** ISTIO_INBOUND_PORTS: `8080,9090` or `*`. */
  readonly inboundPorts?: string;
}

export function sidecarEnvEntries(i: SidecarEnvInput): EnvEntry[] {
  const out: EnvEntry[] = [
    {
      key: 'ISTIO_NAMESPACE',
      value: i.namespace,
      source: "the workload's namespace: its service account's (-n)",
    },
    { key: 'POD_NAME', value: i.vm, source: "the workload's name: the VM's (VM_NAME)" },
  ];
  if (i.service !== undefined)
    out.push({ key: 'ISTIO_SERVICE', value: i.service, source: 'the service cluster (--service)' });
  if (i.inboundPorts !== undefined)
    out.push({
      key: 'ISTIO_INBOUND_PORTS',
      value: i.inboundPorts,
      source: "inbound ports sent to the sidecar: the VM's service ports (--ports)",
    });
  return out;
}

export function renderSidecarEnv(i: SidecarEnvInput, clusterEnv: string): string {
  const text = renderEnvFile(
    [
      `sidecar.env for VM ${i.vm}, written by \`istio-node-agent cluster bundle\`.`,
      `Install it as ${CONFIG_DIR}/sidecar.env, owned by root, mode 0644; it overrides cluster.env.`,
    ],
    sidecarEnvEntries(i),
  );
  checkAgentAccepts([
    { name: 'cluster.env', text: clusterEnv },
    { name: 'sidecar.env', text },
  ]);
  return text;
}

/**
 * Places the bundle's files on the VM, as root. Idempotent: a file already in place with the
 * same content, owner and mode is left alone; prints `changed: …` (or `changed: nothing`) last,
 * which `cluster setup` reads to choose between starting and restarting the agent. Bootstrap
 * certificates are placed only where there are none yet (the agent replaces them with its own),
 * unless --replace-certs. Everything ends up owned by root: files 0644, key.pem 0600,
 * directories 0755 (the agent refuses configuration anyone else can change).
 */
export const INSTALL_SCRIPT = `#!/bin/sh
# Places this folder's files for istio-node-agent; written by \`istio-node-agent cluster bundle\`.
# Usage (as root): sh install.sh [--root DIR] [--deb FILE] [--install-command CMD] [--replace-certs]
#   --root DIR             install under DIR instead of / (an image being prepared)
#   --deb FILE             install this package first, with CMD (default: apt-get install -y)
#   --replace-certs        replace certificates already in ${CERTS_DIR} with this folder's
# Starts nothing; prints what it changed on its last line ("changed: ...").
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=
deb=
install_cmd='apt-get install -y'
replace_certs=no
while [ $# -gt 0 ]; do
  case $1 in
    --root) root=\${2%/}; shift 2 ;;
    --deb) deb=$2; shift 2 ;;
    --install-command) install_cmd=$2; shift 2 ;;
    --replace-certs) replace_certs=yes; shift ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" != 0 ]; then echo "install.sh: run it as root (sudo sh $0)" >&2; exit 1; fi
umask 022
changed=
if [ -n "$deb" ]; then
  case $deb in /*) ;; *) deb=$here/$deb ;; esac
  echo "installing $deb: $install_cmd"
  DEBIAN_FRONTEND=noninteractive $install_cmd "$deb"
  changed="$changed package"
fi
place() { # source destination mode
  if [ -f "$2" ] && [ ! -L "$2" ] && cmp -s "$1" "$2" &&
    [ "$(stat -c %u:%g:%a "$2")" = "0:0:\${3#0}" ]; then
    return 0
  fi
  install -o root -g root -m "$3" "$1" "$2"
  echo "placed \${2#"$root"} (root:root $3)"
  changed="$changed \${2#"$root"}"
}
for d in "$root/var/lib/istio" "$root${CONFIG_DIR}" "$root${CERTS_DIR}"; do
  if [ ! -d "$d" ] || [ "$(stat -c %u:%g:%a "$d")" != 0:0:755 ]; then
    install -d -o root -g root -m 0755 "$d"
    chown root:root "$d"; chmod 0755 "$d"
    echo "made \${d#"$root"} root:root 0755"
  fi
done
place "$here/cluster.env" "$root${CONFIG_DIR}/cluster.env" 0644
place "$here/sidecar.env" "$root${CONFIG_DIR}/sidecar.env" 0644
certs=$root${CERTS_DIR}
if [ "$replace_certs" = yes ] || { [ ! -e "$certs/cert-chain.pem" ] && [ ! -e "$certs/root-cert.pem" ]; }; then
  place "$here/root-cert.pem" "$certs/root-cert.pem" 0644
  if [ -f "$here/cert-chain.pem" ]; then
    place "$here/cert-chain.pem" "$certs/cert-chain.pem" 0644
    place "$here/key.pem" "$certs/key.pem" 0600
  fi
else
  echo "kept the certificates in ${CERTS_DIR} (the agent renews its own; --replace-certs to replace them)"
fi
echo "changed:\${changed:- nothing}"
`;

export interface InstallTextInput {
  readonly vm: string;
  readonly context: string;
  readonly certs: CertSummary;
  readonly rootOnly: boolean;
}

export function renderInstallText(i: InstallTextInput): string {
  const rows: [string, string, string][] = [
    ['cluster.env', `${CONFIG_DIR}/cluster.env`, 'root:root 0644'],
    ['sidecar.env', `${CONFIG_DIR}/sidecar.env`, 'root:root 0644'],
    ['root-cert.pem', `${CERTS_DIR}/root-cert.pem`, 'root:root 0644'],
    ...(i.rootOnly
      ? []
      : ([
          ['cert-chain.pem', `${CERTS_DIR}/cert-chain.pem`, 'root:root 0644'],
          ['key.pem', `${CERTS_DIR}/key.pem`, 'root:root 0600 (secret)'],
        ] as [string, string, string][])),
  ];
  // No "time left" here: the text must not change from one run to the next (idempotent).
  const until = `valid until ${new Date(i.certs.notAfter).toISOString()}`;
  const identity = i.certs.identity
    ? `The bootstrap certificate is ${i.certs.identity}, ${until}; the agent renews its own from it.`
    : `Root certificate only (GCE: the VM's identity comes from the metadata server), ${until}.`;
  return [
    `istio-node-agent bundle for VM ${i.vm}`,
    `Made by \`istio-node-agent cluster bundle\` from context "${i.context}", Secret ${i.certs.secret}.`,
    identity,
    '',
    'Files and where they go (directories root:root 0755):',
    ...rows.map(([f, to, how]) => `  ${f.padEnd(15)} ${to.padEnd(34)} ${how}`),
    '',
    'On the VM (Debian 12 or later):',
    '  1. sudo apt-get install ./istio-node-agent_<version>_amd64.deb',
    '  2. sudo sh install.sh            # places the files above, as root; idempotent',
    `  3. sudo systemctl restart ${UNIT}`,
    '  4. sudo istio-node-agent status  # ready once certificates, capture, DNS and the sidecar are up',
    '',
    `Or all of it from the workstation: istio-node-agent cluster setup ${i.vm} --host USER@HOST`,
    'Delete this folder once the VM is set up: key.pem is its bootstrap private key.',
    '',
  ].join('\n');
}

export interface BundleInput {
  readonly clusterEnv: string;
  readonly sidecarEnv: string;
  readonly certs: CertSet;
  readonly installText: string;
}

/**
 * The certificate files of a set (`cluster certs`, and in a bundle): root-cert.pem, then
 * cert-chain.pem and key.pem unless the set is the root alone; the key 0600, the rest 0644.
 */
export function certFiles(certs: CertSet): OutFile[] {
  const files: OutFile[] = [{ name: 'root-cert.pem', content: certs.rootPem, mode: 0o644 }];
  if (certs.chainPem !== undefined && certs.keyPem !== undefined) {
    files.push(
      { name: 'cert-chain.pem', content: certs.chainPem, mode: 0o644 },
      { name: 'key.pem', content: certs.keyPem, mode: 0o600 },
    );
  }
  return files;
}

/** The folder's files: secrets 0600, the rest 0644, install.sh 0755. */
export function bundleFiles(i: BundleInput): OutFile[] {
  const files: OutFile[] = [
    { name: 'cluster.env', content: i.clusterEnv, mode: 0o644 },
    { name: 'sidecar.env', content: i.sidecarEnv, mode: 0o644 },
    ...certFiles(i.certs),
  ];
  files.push(
    { name: 'install.sh', content: INSTALL_SCRIPT, mode: 0o755 },
    { name: 'INSTALL', content: i.installText, mode: 0o644 },
  );
  return files;
}

/** The same as one archive: a folder `<vm>/` (0700) holding the files, all owned by root. */
export function bundleTar(vm: string, files: readonly OutFile[], mtime: number): Buffer {
  return tarArchive(
    [
      { name: `${vm}/`, mode: 0o700 },
      ...files.map((f) => ({ name: `${vm}/${f.name}`, mode: f.mode, content: f.content })),
    ],
    mtime,
  );
}
