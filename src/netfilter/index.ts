/**
 * Traffic capture into the sidecar. One thing, three names that meet here: this folder
 * (`netfilter/`, what it programs), the component `capture` (STATUS, logs, ISTIO_CAPTURE*) and
 * the command `istio-node-agent iptables` (Istio 1.0's istio-iptables.sh). Where to read:
 * plan.ts (the rules, pure), live.ts (iptables-save against the plan, pure), backend.ts (nft or
 * legacy, and reading the live rules), io.ts, apply.ts, clean.ts, diff.ts, present.ts; the
 * daemon's component is component.ts.
 */
import type { ComponentFactory } from '../component';
import { CaptureComponent } from './component';

export {
  planCapture,
  renderPlan,
  renderFamily,
  samePlan,
  familyName,
  routingCommands,
  wantsIpv6,
  OUR_CHAINS,
} from './plan';
export type {
  CapturePlan,
  FamilyPlan,
  TablePlan,
  ChainPlan,
  JumpPlan,
  IpFamily,
  ProxyIds,
  TproxyRouting,
} from './plan';
export { applyPlan, pendingTransactions } from './apply';
export type { ApplyResult } from './apply';
export { cleanCapture } from './clean';
export type { CleanResult } from './clean';
export { diffLive } from './diff';
export { readLive, readLiveWith, prepare } from './io';
export type { CaptureIo, Prepared, PrepareOptions, Transaction } from './io';
export { driftLine, formatDiff, lineDiff } from './present';
export { resolveProxyIds } from '../host/users';
export { parseSave, normaliseSave, diffFamily, transaction } from './live';
export type { DiffItem, SavedTable } from './live';
export { families, restoreCommand, RESTORE_ARGS } from './backend';
export type { BackendName, LiveState } from './backend';
export { readRecord } from './state';
export type { CaptureRecord } from './state';

export { CaptureComponent } from './component';

export const createCaptureComponent: ComponentFactory = (config, deps) =>
  Promise.resolve(config.capture.enabled ? new CaptureComponent(config, deps) : undefined);
