// The one user lookup of the host (src/host/users.ts): passwd file first, then NSS (getent), and
// what each caller makes of a missing user. The capture's own cases (1337 fallback, the origin of
// a configured ENVOY_USER) are in netfilter-live.test.ts; the sidecar's in sidecar-plan.test.ts.
import t, { type Test } from 'tap';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  FALLBACK_PROXY_ID,
  GETENT_TIMEOUT_MS,
  currentUser,
  findInPasswd,
  lookupExecUser,
  lookupUser,
  parsePasswdLine,
  resolveProxyIds,
} from '../../src/host/users';
import { AgentError } from '../../src/lib/errors';
import type { Exec, ExecOptions, ExecResult } from '../../src/lib/exec';
import { tmpDir } from '../helpers/tmp';

const PASSWD =
  'root:x:0:0:root:/root:/bin/bash\n' +
  'istio-proxy:x:998:997::/var/lib/istio:/usr/sbin/nologin\n' +
  'odd:x:12:\n' +
  'short:x:500:501\n';

function scripted(answers: Record<string, Partial<ExecResult>>): {
  exec: Exec;
  ran: { cmd: string; options: ExecOptions | undefined }[];
} {
  const ran: { cmd: string; options: ExecOptions | undefined }[] = [];
  const exec: Exec = (cmd, args, options) => {
    const key = [cmd, ...args].join(' ');
    ran.push({ cmd: key, options });
    const a = answers[key];
    if (!a) return Promise.reject(new AgentError('AGENT_E_EXEC', `cannot run ${cmd}: not found`));
    return Promise.resolve({ code: a.code ?? 0, stdout: a.stdout ?? '', stderr: a.stderr ?? '' });
  };
  return { exec, ran };
}

function passwdFile(t: Test, text: string): string {
  const dir = tmpDir(t, 'host-users-', { mode: 0o700 });
  const file = path.join(dir, 'passwd');
  writeFileSync(file, text);
  return file;
}

void t.test('passwd lines', (t) => {
  t.same(parsePasswdLine('istio-proxy:x:998:997::/var/lib/istio:/bin/sh\n'), {
    name: 'istio-proxy',
    uid: 998,
    gid: 997,
    home: '/var/lib/istio',
    shell: '/bin/sh',
  });
  t.same(
    parsePasswdLine('short:x:500:501'),
    { name: 'short', uid: 500, gid: 501, home: '/', shell: '/bin/sh' },
    'home and shell default',
  );
  t.equal(parsePasswdLine('broken'), undefined);
  t.equal(parsePasswdLine('odd:x:12:'), undefined, 'no gid');
  t.equal(parsePasswdLine('neg:x:-1:0::/:/bin/sh'), undefined, 'not a decimal uid');
  t.equal(parsePasswdLine(''), undefined);
  t.end();
});

void t.test('findInPasswd: by name, or by uid when numeric', (t) => {
  t.equal(findInPasswd(PASSWD, 'istio-proxy')?.uid, 998);
  t.equal(findInPasswd(PASSWD, '998')?.name, 'istio-proxy');
  t.equal(findInPasswd(PASSWD, '0')?.name, 'root');
  t.equal(findInPasswd(PASSWD, '0998'), undefined, 'a uid is compared as written by passwd');
  t.equal(findInPasswd(PASSWD, 'odd'), undefined, 'a broken line is no user');
  t.equal(findInPasswd(PASSWD, 'nobody-here'), undefined);
  t.end();
});

void t.test('lookupUser: the passwd file first, then getent; one error semantics', async (t) => {
  const file = passwdFile(t, PASSWD);
  const none = scripted({});
  t.equal((await lookupUser(none.exec, 'istio-proxy', file))?.gid, 997);
  t.same(none.ran, [], 'a local user needs no program');

  const nss = scripted({
    'getent passwd svc': { stdout: 'svc:*:5001:5002:proxy:/home/svc:/bin/false\n' },
    'getent passwd gone': { code: 2 },
    'getent passwd garbled': { stdout: 'what\n' },
    'getent passwd broken': { code: 1, stderr: 'nss: boom\n' },
  });
  t.same(await lookupUser(nss.exec, 'svc', file), {
    name: 'svc',
    uid: 5001,
    gid: 5002,
    home: '/home/svc',
    shell: '/bin/false',
  });
  t.equal(nss.ran[0]!.options?.timeoutMs, GETENT_TIMEOUT_MS, 'getent is bounded');
  t.equal(await lookupUser(nss.exec, 'gone', file), undefined, 'exit 2: no such user');
  await t.rejects(lookupUser(nss.exec, 'garbled', file), {
    code: 'AGENT_E_EXEC',
    message: /getent passwd garbled printed an unexpected line: what/,
  });
  await t.rejects(lookupUser(nss.exec, 'broken', file), {
    code: 'AGENT_E_EXEC',
    message: 'getent passwd broken exited 1: nss: boom',
  });
  const nofile = scripted({ 'getent passwd istio-proxy': { stdout: PASSWD.split('\n')[1] } });
  t.equal(
    (await lookupUser(nofile.exec, 'istio-proxy', path.join(file, 'missing')))?.uid,
    998,
    'an unreadable passwd file leaves NSS',
  );
});

void t.test(
  'ENVOY_USER: the fallback for the default user, an error for a configured one',
  async (t) => {
    const file = passwdFile(t, '');
    const missing = scripted({
      'getent passwd istio-proxy': { code: 2 },
      'getent passwd p': { code: 2 },
    });
    const r = await resolveProxyIds(
      { envoyUser: 'istio-proxy', envoyUserOrigin: undefined },
      missing.exec,
      file,
    );
    t.same(r.ids, { uid: FALLBACK_PROXY_ID, gid: FALLBACK_PROXY_ID });
    t.match(r.warning, /as Istio 1.0 did/);
    await t.rejects(
      resolveProxyIds(
        {
          envoyUser: 'p',
          envoyUserOrigin: { file: 'sidecar.env', line: 3, variable: 'ENVOY_USER' },
        },
        missing.exec,
        file,
      ),
      { code: 'AGENT_E_USER_UNKNOWN', origin: { file: 'sidecar.env', line: 3 } },
    );
  },
);

void t.test(
  'EXEC_USER: a missing user is AGENT_E_USER_UNKNOWN; getent failing is not',
  async (t) => {
    const file = passwdFile(t, PASSWD);
    const s = scripted({
      'getent passwd nope': { code: 2 },
      'getent passwd garbled': { stdout: 'what\n' },
    });
    t.equal((await lookupExecUser(s.exec, 'istio-proxy', file)).home, '/var/lib/istio');
    const err = await lookupExecUser(s.exec, 'nope', file).catch((e: unknown) => e);
    t.match(err, {
      code: 'AGENT_E_USER_UNKNOWN',
      message: /EXEC_USER: user "nope" does not exist/,
      details: { user: 'nope' },
    });
    await t.rejects(lookupExecUser(s.exec, 'garbled', file), { code: 'AGENT_E_EXEC' });
  },
);

void t.test('currentUser: the agent itself', (t) => {
  const u = currentUser();
  t.equal(u.uid, process.getuid?.());
  t.type(u.home, 'string');
  t.end();
});
