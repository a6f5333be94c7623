/**
 * Failed API calls as AgentErrors that name the object, the verb and, when RBAC said no, the
 * permission to grant. Pure: the adapter reports what happened (KubeFailure), this decides what
 * the user reads.
 */
import { AgentError, type ErrorCode } from '../lib/errors';
import { statusTexts } from './cidr';
import { isKubeFailure, type KubeCall, type KubeFailure, type KubeTarget } from './kube';

/** Node's codes for a TLS handshake that failed on trust, name or certificate. */
const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'EPROTO',
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
]);

/** `get services "x" in namespace "ns"`, `list servicecidrs.networking.k8s.io`. */
export function describeCall(c: KubeCall): string {
  const res = c.group === '' ? c.resource : `${c.resource}.${c.group}`;
  const obj = c.name !== undefined ? `${res} "${c.name}"` : res;
  const where = c.namespace !== undefined ? ` in namespace "${c.namespace}"` : '';
  return `${c.verb}${c.dryRun ? ' (dry run)' : ''} ${obj}${where}`;
}

/** The RBAC rule that allows the call, as a Role would say it. */
export function neededPermission(c: KubeCall): string {
  const scope =
    c.namespace !== undefined
      ? `in namespace "${c.namespace}" (a Role and RoleBinding there)`
      : 'at the cluster scope (a ClusterRole and ClusterRoleBinding)';
  return `verb "${c.verb}" on resource "${c.resource}" in apiGroup "${c.group}" ${scope}`;
}

function apiMessage(body: unknown): string | undefined {
  const texts = statusTexts(body);
  return texts[0]?.trim() || undefined;
}

/** The AgentError for a failed call. */
export function failureToError(f: KubeFailure, target: KubeTarget): AgentError {
  const what = describeCall(f.call);
  const at = `the API server ${target.server} (context "${target.context}")`;
  const said = apiMessage(f.body);
  const mk = (code: ErrorCode, msg: string): AgentError =>
    new AgentError(code, msg, {
      details: { call: f.call, status: f.status, errno: f.errno },
    });
  if (f.status === undefined) {
    if (f.credentials) {
      return mk(
        'AGENT_E_CLUSTER_AUTH',
        `cannot ${what}: no credentials for user "${target.user}" of context "${target.context}" (${f.message}); check the kubeconfig's user entry (its exec or auth-provider plugin, token or certificate files)`,
      );
    }
    if (f.errno !== undefined && TLS_CODES.has(f.errno)) {
      return mk(
        'AGENT_E_CLUSTER_TLS',
        `cannot ${what}: the TLS handshake with ${at} failed (${f.errno}: ${f.message}); check the kubeconfig's certificate-authority and client certificate for this cluster`,
      );
    }
    if (f.timedOut) {
      return mk(
        'AGENT_E_CLUSTER_UNREACHABLE',
        `cannot ${what}: no answer from ${at} within the deadline; check the network or VPN to the cluster`,
      );
    }
    return mk(
      'AGENT_E_CLUSTER_UNREACHABLE',
      `cannot ${what}: ${at} is unreachable (${f.errno ?? f.message}); check the network or VPN and the server address in the kubeconfig`,
    );
  }
  switch (f.status) {
    case 401:
      return mk(
        'AGENT_E_CLUSTER_AUTH',
        `cannot ${what}: ${at} did not accept the credentials of user "${target.user}" (401 Unauthorized); refresh them (e.g. your cloud CLI's get-credentials) or choose another --context`,
      );
    case 403:
      return mk(
        'AGENT_E_CLUSTER_FORBIDDEN',
        `cannot ${what}: forbidden (403)${said ? `: ${said}` : ''}; the user needs the RBAC permission ${neededPermission(f.call)}, see docs/cluster.md for a Role`,
      );
    case 404:
      return mk(
        'AGENT_E_CLUSTER_NOT_FOUND',
        `cannot ${what}: not found (404)${said ? `: ${said}` : ''}`,
      );
    case 409:
      return mk(
        'AGENT_E_CLUSTER_CONFLICT',
        `cannot ${what}: conflict (409)${said ? `: ${said}` : ''}`,
      );
    default:
      return mk(
        'AGENT_E_CLUSTER_API',
        `cannot ${what}: the API server answered ${f.status}${said ? `: ${said}` : ''}`,
      );
  }
}

/** Runs an API call; a failure becomes an AgentError naming it. */
export async function kubeCall<T>(target: KubeTarget, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (isKubeFailure(e)) throw failureToError(e.kubeFailure, target);
    throw e;
  }
}

/** The HTTP status of a failed call, when it was one (for flows that handle 409 or 403). */
export function failureStatus(e: unknown): number | undefined {
  return isKubeFailure(e) ? e.kubeFailure.status : undefined;
}
