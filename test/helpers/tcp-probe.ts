import { spawn, type ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/**
 * Real TCP inside network namespaces, for the capture tests: small node (and python3, for
 * IP_TRANSPARENT) servers that answer each connection with one line naming themselves and the
 * local address the connection arrived at, and a client that prints what it got.
 */

const SERVER = `
const net = require('node:net');
const [name, host, port] = process.argv.slice(1);
const v4 = (a) => String(a).replace(/^::ffff:/, ''); // a dual-stack socket's IPv4-mapped form
const srv = net.createServer((c) => {
  c.end(name + ' ' + v4(c.localAddress) + ':' + c.localPort + ' from ' + v4(c.remoteAddress) + '\\n');
});
srv.listen({ host, port: Number(port) }, () => process.stdout.write('listening\\n'));
`;

const CLIENT = `
const net = require('node:net');
const [host, port, ms] = process.argv.slice(1);
let out = '';
const c = net.connect({ host, port: Number(port), timeout: Number(ms) });
c.on('data', (b) => (out += b));
c.on('end', () => { process.stdout.write(out.trim()); process.exit(0); });
c.on('timeout', () => { process.stdout.write('TIMEOUT'); process.exit(0); });
c.on('error', (e) => { process.stdout.write('ERROR ' + e.code); process.exit(0); });
`;

/** Python: Node cannot set IP_TRANSPARENT (19), which a TPROXY listener needs. */
const TPROXY_SERVER = `
import socket, sys
name, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
if fam == socket.AF_INET:
    s.setsockopt(socket.SOL_IP, 19, 1)  # IP_TRANSPARENT
else:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.setsockopt(socket.IPPROTO_IPV6, 75, 1)  # IPV6_TRANSPARENT
s.bind((host, port))
s.listen(64)
print('listening', flush=True)
while True:
    c, peer = s.accept()
    local = c.getsockname()
    c.sendall(('%s %s:%d from %s\\n' % (name, local[0], local[1], peer[0])).encode())
    c.close()
`;

export interface Server {
  readonly name: string;
  stop(): void;
}

/** Starts a server inside `ns` and resolves once it listens. */
export function startServer(
  ns: string,
  name: string,
  host: string,
  port: number,
  opts: { transparent?: boolean } = {},
): Promise<Server> {
  const args = opts.transparent
    ? ['netns', 'exec', ns, 'python3', '-u', '-c', TPROXY_SERVER, name, host, String(port)]
    : ['netns', 'exec', ns, 'node', '-e', SERVER, name, host, String(port)];
  const child: ChildProcess = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server ${name} did not start: ${err}`));
    }, 20_000);
    child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    child.stdout!.on('data', (b: Buffer) => {
      if (b.toString().includes('listening')) {
        clearTimeout(timer);
        resolve({ name, stop: () => child.kill('SIGKILL') });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server ${name} exited ${code}: ${err}`));
    });
  });
}

export interface ConnectOptions {
  /** Run the client as this uid/gid (setpriv), e.g. the proxy user. */
  readonly uid?: number;
  readonly gid?: number;
  readonly timeoutMs?: number;
}

/**
 * Connects from inside `ns` and returns the server's line ("proxy 127.0.0.1:15001 from …"),
 * or "TIMEOUT" / "ERROR <code>".
 */
export async function connect(
  ns: string,
  host: string,
  port: number,
  opts: ConnectOptions = {},
): Promise<string> {
  const as =
    opts.uid === undefined
      ? []
      : ['setpriv', `--reuid=${opts.uid}`, `--regid=${opts.gid ?? opts.uid}`, '--clear-groups'];
  const r = await execFileP(
    'ip',
    [
      'netns',
      'exec',
      ns,
      ...as,
      'node',
      '-e',
      CLIENT,
      host,
      String(port),
      String(opts.timeoutMs ?? 3000),
    ],
    {
      timeout: 30_000,
    },
  );
  return r.stdout;
}
