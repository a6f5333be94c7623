import t from 'tap';
import { execFileSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { generateWorkloadKey } from '../../src/certs/keys';
import { createCsr } from '../../src/certs/csr';

const ID = 'spiffe://cluster.local/ns/default/sa/vm';

function openssl(args: string[], input: string): string {
  return execFileSync('openssl', args, {
    input,
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

for (const alg of ['RSA', 'ECDSA'] as const) {
  t.test(`${alg} key and CSR, checked by openssl`, async (t) => {
    const key = await generateWorkloadKey(alg);
    t.match(
      key.pem,
      alg === 'RSA' ? /^-----BEGIN RSA PRIVATE KEY-----/ : /^-----BEGIN EC PRIVATE KEY-----/,
      'PEM type as 1.0 wrote it',
    );
    const csr = await createCsr(key, ID, 'Juju org');
    const text = openssl(['req', '-verify', '-noout', '-text'], csr);
    t.match(text, /Subject: O ?= ?Juju org/);
    t.match(text, new RegExp(`URI:${ID.replace(/[/.]/g, '\\$&')}`));
    t.match(text, alg === 'RSA' ? /Public-Key: \(2048 bit\)/ : /ASN1 OID: prime256v1/);
    // The CSR's public key is the key we hold.
    const csrPub = openssl(['req', '-noout', '-pubkey'], csr);
    t.equal(
      createPublicKey(csrPub).export({ type: 'spki', format: 'pem' }),
      createPublicKey(key.object).export({ type: 'spki', format: 'pem' }),
    );
    if (alg === 'RSA') t.match(openssl(['rsa', '-check', '-noout'], key.pem), /RSA key ok/);
    else t.match(openssl(['pkey', '-noout', '-text'], key.pem), /prime256v1/);
  });
}

t.test('identity lists: IPs become iPAddress, others dNSName (1.0)', async (t) => {
  const key = await generateWorkloadKey('ECDSA');
  const text = openssl(
    ['req', '-noout', '-text'],
    await createCsr(key, `${ID},10.1.2.3,vm.example.com`, ''),
  );
  t.match(text, /URI:spiffe:\/\/cluster\.local\/ns\/default\/sa\/vm/);
  t.match(text, /IP Address:10\.1\.2\.3/);
  t.match(text, /DNS:vm\.example\.com/);
});

t.test('RSA key size is honoured', async (t) => {
  const key = await generateWorkloadKey('RSA', 3072);
  t.match(openssl(['rsa', '-noout', '-text'], key.pem), /Private-Key: \(3072 bit/);
});
