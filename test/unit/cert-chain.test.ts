// The one rule set for certificate chains (src/certs/chain.ts), used by the checks of the CA's
// answer, by `check` and by the dev CA.
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { issuedBy, verifyChain } from '../../src/certs/chain';
import { makeIntermediate, makeLeaf, makeRoot } from '../helpers/pki';

const ID = 'spiffe://cluster.local/ns/default/sa/vm';
const now = Date.now();
const x = (pem: string): X509Certificate => new X509Certificate(pem);

t.test('chains leaf first, to the anchors', async (t) => {
  const root = await makeRoot();
  const inter = await makeIntermediate(root);
  const lookalike = await makeRoot(); // same name as root, another key
  const foreign = await makeRoot('CN=foreign root');
  const opts = {
    sans: [{ type: 'url' as const, value: ID }],
    notBefore: now,
    notAfter: now + 3600_000,
  };
  const direct = x((await makeLeaf(root, opts)).certPem);
  const viaInter = x((await makeLeaf(inter, opts)).certPem);
  const [R, I, L, F] = [
    x(root.certPem),
    x(inter.certPem),
    x(lookalike.certPem),
    x(foreign.certPem),
  ];

  t.same(verifyChain([direct], [R]), { ok: true, topIsAnchor: false, anchor: R });
  t.same(verifyChain([viaInter, I], [F, R]), { ok: true, topIsAnchor: false, anchor: R });
  t.same(
    verifyChain([viaInter, I, R], [R]),
    { ok: true, topIsAnchor: true, anchor: undefined },
    'the anchor itself at the top',
  );
  t.same(verifyChain([R], [R]), { ok: true, topIsAnchor: true, anchor: undefined });

  t.same(verifyChain([viaInter, I], [F]), { ok: false, untrusted: true }, 'another root');
  t.same(
    verifyChain([direct], [L]),
    { ok: false, untrusted: true },
    'the right name is not enough: the signature must verify',
  );
  t.same(verifyChain([viaInter], [R]), { ok: false, untrusted: true }, 'intermediate missing');
  t.same(verifyChain([direct, I], [R]), { ok: false, brokenAt: 0 }, 'not issued by the next');
  t.same(verifyChain([viaInter, R, I], [R]), { ok: false, brokenAt: 0 }, 'order matters');

  t.ok(issuedBy(viaInter, I));
  t.notOk(issuedBy(viaInter, R));
  t.notOk(issuedBy(direct, L), 'same issuer name, other key');
});
