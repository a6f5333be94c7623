import type { Cidr } from '../config/index';
import type { CaptureConfig } from '../config/types';
import { destMatch } from './cidr';

/**
 * The capture plan: a pure function from configuration to the rules Istio 1.0's
 * istio-iptables.sh would have installed (same chains, same order, same meaning), minus its
 * known defects (see docs/decisions.md). Rules are kept in the exact text form
 * `iptables-save` prints, so live rules and planned rules compare as strings.
 */

export type IpFamily = 4 | 6;
export type TableName = 'nat' | 'mangle' | 'filter';

export const ISTIO_OUTPUT = 'ISTIO_OUTPUT';
export const ISTIO_REDIRECT = 'ISTIO_REDIRECT';
export const ISTIO_IN_REDIRECT = 'ISTIO_IN_REDIRECT';
export const ISTIO_INBOUND = 'ISTIO_INBOUND';
export const ISTIO_DIVERT = 'ISTIO_DIVERT';
export const ISTIO_TPROXY = 'ISTIO_TPROXY';
/** Ours, not 1.0's: the opt-in replacement for 1.0's flush-and-reject of ip6tables INPUT. */
export const ISTIO_REJECT_IPV6 = 'ISTIO_REJECT_IPV6';

/** Every chain this agent owns, in any table. Nothing else on the host is ever touched. */
export const OUR_CHAINS: ReadonlySet<string> = new Set([
  ISTIO_OUTPUT,
  ISTIO_REDIRECT,
  ISTIO_IN_REDIRECT,
  ISTIO_INBOUND,
  ISTIO_DIVERT,
  ISTIO_TPROXY,
  ISTIO_REJECT_IPV6,
]);

export const TABLE_ORDER: readonly TableName[] = ['nat', 'mangle', 'filter'];

/** SSH is never captured, whatever the port list says. */
export const SSH_PORT = 22;

export interface ChainPlan {
  readonly name: string;
  /** Rule specs in order, as iptables-save prints them after `-A <chain> `. */
  readonly rules: readonly string[];
}

/** A rule in a built-in chain that sends traffic into one of our chains. */
export interface JumpPlan {
  readonly chain: string;
  readonly rule: string;
  /** Inserted at the top (`-I chain 1`) instead of appended (`-A`, as 1.0 did). */
  readonly first: boolean;
}

export interface TablePlan {
  readonly table: TableName;
  readonly chains: readonly ChainPlan[];
  readonly jumps: readonly JumpPlan[];
}

export interface FamilyPlan {
  readonly family: IpFamily;
  /** Empty when this family gets no rules (apply then removes any of ours left there). */
  readonly tables: readonly TablePlan[];
}

/** TPROXY's policy routing: `ip rule add fwmark <mark> lookup <table>` + a local default route. */
export interface TproxyRouting {
  readonly family: IpFamily;
  readonly mark: number;
  readonly table: number;
}

export interface CapturePlan {
  /** One entry per family the host can program (4, and 6 when ip6tables works). */
  readonly families: readonly FamilyPlan[];
  readonly routing: readonly TproxyRouting[];
  /** Things the operator should know (ignored settings, fallbacks); never fatal. */
  readonly warnings: readonly string[];
  /** Rules in our chains plus jump rules, all families. */
  readonly ruleCount: number;
}

export interface ProxyIds {
  readonly uid: number;
  readonly gid: number;
}

const LOOPBACK: Record<IpFamily, string> = { 4: '127.0.0.1/32', 6: '::1/128' };
const ANY_ADDR: Record<IpFamily, string> = { 4: '0.0.0.0', 6: '::' };

const hex = (n: number): string => `0x${n.toString(16)}`;

/**
 * Builds the plan. `ids` are the proxy user's uid and gid (resolved by the caller);
 * `families` are the IP families the host can program.
 */
export function planCapture(
  cfg: CaptureConfig,
  ids: ProxyIds,
  families: readonly IpFamily[],
): CapturePlan {
  const warnings: string[] = [];
  let inbound: '*' | readonly number[] = cfg.inboundPorts;
  if (inbound !== '*' && inbound.includes(SSH_PORT)) {
    warnings.push(
      `ISTIO_INBOUND_PORTS lists ${SSH_PORT}; SSH is never captured, so it is left out`,
    );
    inbound = inbound.filter((p) => p !== SSH_PORT);
  }
  inbound = inbound === '*' ? '*' : [...new Set(inbound)];
  if (inbound !== '*' && cfg.localExcludePorts.length > 0) {
    warnings.push(
      'ISTIO_LOCAL_EXCLUDE_PORTS applies only when ISTIO_INBOUND_PORTS=*; it is ignored',
    );
  }
  const ofFamily = (list: readonly Cidr[], f: IpFamily): Cidr[] =>
    list.filter((c) => c.family === f);
  const v6Ranges = cfg.serviceCidrs !== '*' && ofFamily(cfg.serviceCidrs, 6).length > 0;
  const inboundOn = inbound === '*' || inbound.length > 0;
  if (wantsIpv6(cfg) && !families.includes(6)) {
    warnings.push(
      'IPv6 capture is configured but ip6tables is not usable on this host; only IPv4 is programmed',
    );
  }

  const out: FamilyPlan[] = [];
  const routing: TproxyRouting[] = [];
  for (const family of [4, 6] as const) {
    if (!families.includes(family)) continue;
    const active = family === 4 || v6Ranges || (cfg.enableInboundIpv6 && inboundOn);
    const tables: TablePlan[] = [];
    if (active) {
      const include: '*' | Cidr[] =
        cfg.serviceCidrs === '*' ? (family === 4 ? '*' : []) : ofFamily(cfg.serviceCidrs, family);
      // IPv6 inbound is captured only on request (ENABLE_INBOUND_IPV6); 1.0 had no IPv6 capture.
      const inboundHere = family === 4 || cfg.enableInboundIpv6 ? inbound : [];
      const capture = captureTables(
        cfg,
        ids,
        family,
        inboundHere,
        include,
        ofFamily(cfg.serviceExcludeCidrs, family),
      );
      tables.push(...capture.tables);
      if (capture.tproxy)
        routing.push({ family, mark: cfg.tproxyMark, table: cfg.tproxyRouteTable });
    }
    if (family === 6 && cfg.rejectInboundIpv6) tables.push(rejectIpv6Table());
    out.push({ family, tables: sortTables(tables) });
  }
  const ruleCount = out
    .flatMap((f) => f.tables)
    .reduce((n, t) => n + t.jumps.length + t.chains.reduce((m, c) => m + c.rules.length, 0), 0);
  return { families: out, routing, warnings, ruleCount };
}

/** Whether this configuration asks for any IPv6 rule (pure; decides whether ip6tables matters). */
export function wantsIpv6(cfg: CaptureConfig): boolean {
  const v6Ranges = cfg.serviceCidrs !== '*' && cfg.serviceCidrs.some((c) => c.family === 6);
  const inbound = cfg.inboundPorts === '*' || cfg.inboundPorts.some((p) => p !== SSH_PORT);
  return v6Ranges || (cfg.enableInboundIpv6 && inbound) || cfg.rejectInboundIpv6;
}

function captureTables(
  cfg: CaptureConfig,
  ids: ProxyIds,
  family: IpFamily,
  inbound: '*' | readonly number[],
  include: '*' | readonly Cidr[],
  exclude: readonly Cidr[],
): { tables: TablePlan[]; tproxy: boolean } {
  const lo = LOOPBACK[family];
  const nat: ChainPlan[] = [
    { name: ISTIO_REDIRECT, rules: [`-p tcp -j REDIRECT --to-ports ${cfg.envoyPort}`] },
    { name: ISTIO_IN_REDIRECT, rules: [`-p tcp -j REDIRECT --to-ports ${cfg.inboundCapturePort}`] },
  ];
  const natJumps: JumpPlan[] = [];
  const tables: TablePlan[] = [];
  let tproxy = false;

  if (inbound === '*' || inbound.length > 0) {
    const rules: string[] = [];
    const isTproxy = cfg.mode === 'TPROXY';
    if (inbound === '*') {
      for (const p of [SSH_PORT, ...cfg.localExcludePorts.filter((x) => x !== SSH_PORT)]) {
        rules.push(`-p tcp -m tcp --dport ${p} -j RETURN`);
      }
      if (isTproxy) rules.push(`-p tcp -m socket -j ${ISTIO_DIVERT}`, `-p tcp -j ${ISTIO_TPROXY}`);
      else rules.push(`-p tcp -j ${ISTIO_IN_REDIRECT}`);
    } else {
      for (const p of inbound) {
        // 1.0 appended the socket rule twice per port; once is enough.
        if (isTproxy)
          rules.push(
            `-p tcp -m tcp --dport ${p} -m socket -j ${ISTIO_DIVERT}`,
            `-p tcp -m tcp --dport ${p} -j ${ISTIO_TPROXY}`,
          );
        else rules.push(`-p tcp -m tcp --dport ${p} -j ${ISTIO_IN_REDIRECT}`);
      }
    }
    const jump: JumpPlan = {
      chain: 'PREROUTING',
      rule: `-p tcp -j ${ISTIO_INBOUND}`,
      first: false,
    };
    if (isTproxy) {
      tproxy = true;
      const mark = `${hex(cfg.tproxyMark)}/0xffffffff`;
      tables.push({
        table: 'mangle',
        chains: [
          { name: ISTIO_DIVERT, rules: [`-j MARK --set-xmark ${mark}`, '-j ACCEPT'] },
          {
            name: ISTIO_TPROXY,
            rules: [
              `! -d ${lo} -p tcp -j TPROXY --on-port ${cfg.inboundCapturePort} --on-ip ${ANY_ADDR[family]} --tproxy-mark ${mark}`,
            ],
          },
          { name: ISTIO_INBOUND, rules },
        ],
        jumps: [jump],
      });
    } else {
      nat.push({ name: ISTIO_INBOUND, rules });
      natJumps.push(jump);
    }
  }

  const output: string[] = [`! -d ${lo} -o lo -j ${ISTIO_REDIRECT}`];
  for (const uid of unique([ids.uid, 0])) output.push(`-m owner --uid-owner ${uid} -j RETURN`);
  for (const gid of unique([ids.gid, 0])) output.push(`-m owner --gid-owner ${gid} -j RETURN`);
  output.push(`-d ${lo} -j RETURN`);
  for (const c of exclude) output.push(`${destMatch(c)}-j RETURN`);
  if (include === '*') {
    output.push(`-j ${ISTIO_REDIRECT}`);
  } else if (include.length > 0) {
    for (const c of include) output.push(`${destMatch(c)}-j ${ISTIO_REDIRECT}`);
    output.push('-j RETURN');
  }
  nat.push({ name: ISTIO_OUTPUT, rules: output });
  natJumps.push({ chain: 'OUTPUT', rule: `-p tcp -j ${ISTIO_OUTPUT}`, first: false });
  tables.push({ table: 'nat', chains: nat, jumps: natJumps });
  return { tables, tproxy };
}

/**
 * Opt-in (ISTIO_REJECT_INBOUND_IPV6): rejects new inbound IPv6 connections, as 1.0 did by
 * default, but in our own chain, leaving the host's INPUT rules, loopback, ICMPv6 (neighbour
 * discovery) and established connections alone.
 */
function rejectIpv6Table(): TablePlan {
  return {
    table: 'filter',
    chains: [
      {
        name: ISTIO_REJECT_IPV6,
        rules: [
          '-i lo -j RETURN',
          '-p ipv6-icmp -j RETURN',
          '-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN',
          '-j REJECT --reject-with icmp6-port-unreachable',
        ],
      },
    ],
    jumps: [{ chain: 'INPUT', rule: `-j ${ISTIO_REJECT_IPV6}`, first: true }],
  };
}

function unique(xs: readonly number[]): number[] {
  return [...new Set(xs)];
}

function sortTables(tables: TablePlan[]): TablePlan[] {
  return [...tables].sort((a, b) => TABLE_ORDER.indexOf(a.table) - TABLE_ORDER.indexOf(b.table));
}

/** The whole desired state of one family as `iptables-restore --noflush` input (for a host without our rules). */
export function renderFamily(fp: FamilyPlan): string {
  let s = '';
  for (const t of fp.tables) {
    s += `*${t.table}\n`;
    for (const c of t.chains) s += `:${c.name} - [0:0]\n`;
    for (const c of t.chains) for (const r of c.rules) s += `-A ${c.name} ${r}\n`;
    for (const j of t.jumps)
      s += j.first ? `-I ${j.chain} 1 ${j.rule}\n` : `-A ${j.chain} ${j.rule}\n`;
    s += 'COMMIT\n';
  }
  return s;
}

export function familyName(f: IpFamily): string {
  return f === 4 ? 'ipv4' : 'ipv6';
}

export function routingCommands(r: TproxyRouting): string[] {
  const fam = r.family === 4 ? '-4' : '-6';
  const dst = r.family === 4 ? 'default' : '::/0';
  return [
    `ip ${fam} rule add fwmark ${r.mark} lookup ${r.table}`,
    `ip ${fam} route add local ${dst} dev lo table ${r.table}`,
  ];
}

/** Human-readable plan: one `iptables-restore --noflush` block per family, routing as comments. */
export function renderPlan(plan: CapturePlan): string {
  const parts: string[] = [];
  for (const fp of plan.families) {
    const tool = fp.family === 4 ? 'iptables-restore' : 'ip6tables-restore';
    parts.push(
      fp.tables.length === 0
        ? `# ${familyName(fp.family)}: no rules (any of ours found there are removed)\n`
        : `# ${familyName(fp.family)}: ${tool} --noflush\n${renderFamily(fp)}`,
    );
  }
  for (const r of plan.routing)
    parts.push(
      routingCommands(r)
        .map((c) => `# ${c}\n`)
        .join(''),
    );
  return parts.join('');
}

/** Structural equality of two plans (what reload uses to decide whether to apply). */
export function samePlan(a: CapturePlan, b: CapturePlan): boolean {
  return JSON.stringify([a.families, a.routing]) === JSON.stringify([b.families, b.routing]);
}
