import t from 'tap';
import { checkIssued } from '../../src/certs/validate';
import { generateWorkloadKey } from '../../src/certs/keys';
import { certificateSans, identityFromSans, identityOfCertificate } from '../../src/identity/san';
import { AgentError } from '../../src/lib/errors';
import { makeIntermediate, makeLeaf, makeRoot } from '../helpers/pki';

const ID = 'spiffe://cluster.local/ns/default/sa/vm';
const now = Date.now();

async function code(fn: () => unknown): Promise<string> {
  try {
    fn();
  } catch (e) {
    if (e instanceof AgentError) return e.code;
    throw e;
  }
  return 'accepted';
}

t.test('response checks', async (t) => {
  const root = await makeRoot();
  const inter = await makeIntermediate(root);
  const foreign = await makeRoot('CN=foreign root');
  const key = await generateWorkloadKey('ECDSA');
  const good = await makeLeaf(root, {
    sans: [{ type: 'url', value: ID }],
    notBefore: now - 1000,
    notAfter: now + 3600_000,
    key,
  });
  const base = { key: key.object, identity: ID, rootPem: root.certPem, now, skewMs: 300_000 };

  const ok = checkIssued({ ...base, response: [good.certPem] });
  t.equal(ok.notAfter, Math.floor((now + 3600_000) / 1000) * 1000, 'notAfter read from the leaf');
  t.same(ok.chain, [good.certPem]);

  // HandleCSR style: signed_cert + intermediates; CreateCertificate style: leaf, inter, root
  const viaInter = await makeLeaf(inter, {
    sans: [{ type: 'url', value: ID }],
    notBefore: now - 1000,
    notAfter: now + 3600_000,
    key,
  });
  t.same(checkIssued({ ...base, response: [viaInter.certPem, inter.certPem] }).chain, [
    viaInter.certPem,
    inter.certPem,
  ]);
  t.same(
    checkIssued({ ...base, response: [viaInter.certPem + inter.certPem + root.certPem] }).chain,
    [viaInter.certPem, inter.certPem],
    'a trailing trust anchor is dropped from cert-chain.pem',
  );

  const otherKey = await makeLeaf(root, {
    sans: [{ type: 'url', value: ID }],
    notBefore: now - 1000,
    notAfter: now + 3600_000,
  });
  t.equal(
    await code(() => checkIssued({ ...base, response: [otherKey.certPem] })),
    'AGENT_E_CERT_KEY_MISMATCH',
    'wrong key',
  );

  const wrongSan = await makeLeaf(root, {
    sans: [{ type: 'url', value: 'spiffe://cluster.local/ns/default/sa/other' }],
    notBefore: now - 1000,
    notAfter: now + 3600_000,
    key,
  });
  t.equal(
    await code(() => checkIssued({ ...base, response: [wrongSan.certPem] })),
    'AGENT_E_CERT_SAN_MISMATCH',
    'wrong SAN',
  );

  const noSan = await makeLeaf(root, {
    sans: [],
    notBefore: now - 1000,
    notAfter: now + 3600_000,
    key,
  });
  t.equal(
    await code(() => checkIssued({ ...base, response: [noSan.certPem] })),
    'AGENT_E_CERT_SAN_MISMATCH',
    'no SAN',
  );

  const expired = await makeLeaf(root, {
    sans: [{ type: 'url', value: ID }],
    notBefore: now - 7200_000,
    notAfter: now - 3600_000,
    key,
  });
  t.equal(
    await code(() => checkIssued({ ...base, response: [expired.certPem] })),
    'AGENT_E_CERT_VALIDITY',
    'expired',
  );

  const future = await makeLeaf(root, {
    sans: [{ type: 'url', value: ID }],
    notBefore: now + 3600_000,
    notAfter: now + 7200_000,
    key,
  });
  t.equal(
    await code(() => checkIssued({ ...base, response: [future.certPem] })),
    'AGENT_E_CERT_VALIDITY',
    'not yet valid beyond skew',
  );
  const slightlyAhead = await makeLeaf(root, {
    sans: [{ type: 'url', value: ID }],
    notBefore: now + 60_000,
    notAfter: now + 7200_000,
    key,
  });
  t.equal(
    await code(() => checkIssued({ ...base, response: [slightlyAhead.certPem] })),
    'accepted',
    'within skew is accepted',
  );

  const foreignLeaf = await makeLeaf(foreign, {
    sans: [{ type: 'url', value: ID }],
    notBefore: now - 1000,
    notAfter: now + 3600_000,
    key,
  });
  t.equal(
    await code(() => checkIssued({ ...base, response: [foreignLeaf.certPem] })),
    'AGENT_E_CERT_CHAIN',
    'foreign chain',
  );
  t.equal(
    await code(() => checkIssued({ ...base, response: [foreignLeaf.certPem, foreign.certPem] })),
    'AGENT_E_CERT_CHAIN',
    'foreign chain that carries its own root',
  );
  t.equal(
    await code(() => checkIssued({ ...base, response: [viaInter.certPem] })),
    'AGENT_E_CERT_CHAIN',
    'missing intermediate',
  );
  t.equal(
    await code(() => checkIssued({ ...base, response: [viaInter.certPem, foreign.certPem] })),
    'AGENT_E_CERT_CHAIN',
    'wrong intermediate',
  );

  t.equal(
    await code(() => checkIssued({ ...base, response: ['garbage'] })),
    'AGENT_E_CERT_PARSE',
    'not PEM',
  );
  t.equal(
    await code(() =>
      checkIssued({
        ...base,
        response: ['-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'],
      }),
    ),
    'AGENT_E_CERT_PARSE',
    'PEM armour around garbage',
  );
  t.equal(await code(() => checkIssued({ ...base, response: [] })), 'AGENT_E_CERT_PARSE', 'empty');
});

t.test('identity from SANs (Istio 1.0 rules)', async (t) => {
  const table: [{ type: 'uri' | 'dns' | 'ip'; value: string }[], string | undefined][] = [
    [[{ type: 'uri', value: ID }], ID],
    [[{ type: 'dns', value: 'vm.example.com' }], 'vm.example.com'],
    [
      [
        { type: 'dns', value: 'a' },
        { type: 'uri', value: ID },
        { type: 'uri', value: 'spiffe://x/y' },
      ],
      ID,
    ],
    [
      [
        { type: 'dns', value: 'a' },
        { type: 'dns', value: 'b' },
      ],
      undefined,
    ],
    [[], undefined],
  ];
  for (const [sans, want] of table) t.equal(identityFromSans(sans), want, JSON.stringify(sans));

  const root = await makeRoot();
  const two = await makeLeaf(root, {
    sans: [
      { type: 'dns', value: 'vm' },
      { type: 'url', value: ID },
    ],
    notBefore: now,
    notAfter: now + 1000,
  });
  t.same(certificateSans(two.certPem), [
    { type: 'dns', value: 'vm' },
    { type: 'uri', value: ID },
  ]);
  t.equal(identityOfCertificate(two.certPem, 'cert-chain.pem'), ID);
  const none = await makeLeaf(root, { sans: [], notBefore: now, notAfter: now + 1000 });
  t.throws(() => identityOfCertificate(none.certPem, 'cert-chain.pem'), {
    code: 'AGENT_E_IDENTITY_SAN',
  });
  t.throws(() => identityOfCertificate('nope', 'cert-chain.pem'), {
    code: 'AGENT_E_BOOTSTRAP_INVALID',
  });
});

t.test("parsing Node's subjectAltName text", async (t) => {
  const { parseSubjectAltName } = await import('../../src/identity/san');
  t.same(
    parseSubjectAltName(
      'URI:spiffe://cluster.local/ns/a/sa/b, DNS:vm.example.com, IP Address:10.1.2.3',
    ),
    [
      { type: 'uri', value: 'spiffe://cluster.local/ns/a/sa/b' },
      { type: 'dns', value: 'vm.example.com' },
      { type: 'ip', value: '10.1.2.3' },
    ],
  );
  t.same(parseSubjectAltName('URI:"spiffe://x/a, b", DNS:y'), [
    { type: 'uri', value: 'spiffe://x/a, b' },
    { type: 'dns', value: 'y' },
  ]);
  t.same(parseSubjectAltName(undefined), []);
  const root = await makeRoot();
  const odd = await makeLeaf(root, {
    sans: [
      { type: 'url', value: 'spiffe://x/with,comma' },
      { type: 'ip', value: '10.0.0.1' },
    ],
    notBefore: now,
    notAfter: now + 1000,
  });
  t.same(certificateSans(odd.certPem), [
    { type: 'uri', value: 'spiffe://x/with,comma' },
    { type: 'ip', value: '10.0.0.1' },
  ]);
});
