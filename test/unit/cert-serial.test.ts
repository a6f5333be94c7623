import t from 'tap';
import { certSerial, formatSerial } from '../../src/lib/cert-serial';

t.test('a certificate serial in one form: upper-case hex, no separators', async (t) => {
  t.equal(formatSerial('0a:1b:ff'), '0A1BFF');
  t.equal(formatSerial('0a1bff'), '0A1BFF');
  t.equal(formatSerial('0A1BFF'), '0A1BFF');
  t.equal(certSerial({ serialNumber: '7f:00:aa' }), '7F00AA');
});
