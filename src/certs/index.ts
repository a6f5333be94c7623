/**
 * The certificate component: the workload key and CSR, the checks of what the CA returns, the
 * on-disk set swapped atomically, the rotation policy (policy.ts, pure) and the manager that
 * runs it. Start reading at component.ts (how it is built), then manager.ts.
 */
import type { ComponentFactory } from '../component';
import { CertComponent } from './component';

export {
  CertComponent,
  buildCertManager,
  caConnector,
  createCertManager,
  lookupCertSetup,
  type CertComponentOptions,
  type CertSetup,
} from './component';
export { verifyChain, type ChainVerdict } from './chain';
export { checkIssued } from './validate';
export { CertManager } from './manager';
export { CertStore } from './store';

/** The certificate component for `run`: pure, see CertComponent. */
export const createCertComponent: ComponentFactory = (config, deps) =>
  Promise.resolve(new CertComponent(config, deps));
