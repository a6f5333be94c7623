// The one place that loads @peculiar/x509: its dependency tsyringe needs reflect-metadata loaded
// first, and the library needs Node's WebCrypto as its provider.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };
