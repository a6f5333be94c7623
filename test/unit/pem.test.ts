import t from 'tap';
import { extractCertificates, joinPem, splitPemCertificates } from '../../src/lib/pem';

const A = '-----BEGIN CERTIFICATE-----\nQUFB\n-----END CERTIFICATE-----';
const B = '-----BEGIN CERTIFICATE-----\r\nQkJC\r\n-----END CERTIFICATE-----';

void t.test('splitPemCertificates', (t) => {
  t.same(splitPemCertificates(A), [A + '\n'], 'one block, newline added');
  t.same(
    splitPemCertificates(`${A}\n${B}\n`),
    [A + '\n', B.replace(/\r\n/g, '\n') + '\n'],
    'two blocks, CRLF normalized',
  );
  t.same(splitPemCertificates(`\n\n${A}\n\n`), [A + '\n'], 'blank lines around are fine');
  t.equal(splitPemCertificates(''), undefined, 'empty');
  t.equal(splitPemCertificates('   \n'), undefined, 'blank');
  t.equal(splitPemCertificates('garbage'), undefined, 'no block');
  t.equal(splitPemCertificates(`${A}\ngarbage\n${B}`), undefined, 'text between blocks');
  t.equal(splitPemCertificates(`${A}\ntrailing`), undefined, 'text after');
  t.equal(
    splitPemCertificates('-----BEGIN PRIVATE KEY-----\nQUFB\n-----END PRIVATE KEY-----'),
    undefined,
    'a key is not a certificate',
  );
  t.equal(
    splitPemCertificates('-----BEGIN CERTIFICATE-----\nQUFB\n-----END X509 CRL-----'),
    undefined,
    'mismatched labels',
  );
  t.equal(
    splitPemCertificates('-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----'),
    undefined,
    'non-base64 body',
  );
  t.end();
});

void t.test('extractCertificates: every CERTIFICATE block, whatever is around it', (t) => {
  t.same(extractCertificates(A), [A + '\n']);
  t.same(
    extractCertificates(`subject=CN = root\n${A}\n# comment\n${B}\n`),
    [A + '\n', B + '\n'],
    'text around and between blocks is ignored; CRLF kept',
  );
  t.same(
    extractCertificates(`-----BEGIN PRIVATE KEY-----\nQUFB\n-----END PRIVATE KEY-----\n${A}`),
    [A + '\n'],
    'other blocks are skipped',
  );
  t.same(extractCertificates(''), []);
  t.same(extractCertificates('garbage'), []);
  t.end();
});

void t.test('joinPem: one newline after each block', (t) => {
  t.equal(joinPem([A, A + '\n']), `${A}\n${A}\n`);
  t.equal(joinPem([]), '');
  t.same(extractCertificates(joinPem([A, A])), [A + '\n', A + '\n'], 'round trip');
  t.end();
});
