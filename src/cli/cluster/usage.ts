/**
 * The `cluster` command's help: the verbs (TOP) and each verb's usage, with the option groups
 * they share. Printed by `--help` and after a usage error (exit 2).
 */
import { DEFAULT_SCP, DEFAULT_SSH, DEFAULT_START, DEFAULT_STATUS } from '../../cluster/index';

export const TOP = `Usage: istio-node-agent cluster <verb> [options]

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

export const USAGES: Readonly<Record<string, string>> = {
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
