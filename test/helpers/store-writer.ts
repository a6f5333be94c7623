// Child process for the crash-consistency test: publishes the given certificate sets in a loop
// through the real CertStore until it is killed. Prints "ready" once, then one line per write.
import { readFileSync } from 'node:fs';
import { CertStore } from '../../src/certs/store';

const [dir, setsFile] = process.argv.slice(2) as [string, string];
const sets = JSON.parse(readFileSync(setsFile, 'utf8')) as {
  keyPem: string;
  chainPem: string;
  rootPem: string;
}[];
const store = new CertStore(dir);

void (async () => {
  await store.prepare();
  process.stdout.write('ready\n');
  for (let i = 0; ; i++) {
    const s = sets[i % sets.length]!;
    await store.write(s, { issuer: 'agent', serial: String(i) });
  }
})();
