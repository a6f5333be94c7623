import { text, type FileState } from './files';
import type { HostFacts } from './probe';
import { forwardedDomain, isManaged, localNames, nameCount, renderKubedns } from './render';
import { chooseResolver, planResolver, type ResolverPlan } from './resolver';
import { dropInPath, kubednsInput, type DnsSettings } from './settings';
import type { ChangeRecord } from './state';

/**
 * What an apply would do, decided from the settings and the host facts (probe.ts). Pure: the
 * facts come in, the drop-in text, the resolver edits and the earlier changes to undo come out.
 */

export type DropInAction = 'create' | 'update' | 'unchanged' | 'take-over';

export interface DnsPlan {
  /** Host path of the drop-in. */
  readonly dropInPath: string;
  readonly content: string;
  readonly dropIn: DropInAction;
  readonly dropInBefore: FileState;
  readonly names: number;
  readonly resolver: ResolverPlan;
  /** Earlier changes the current setup no longer wants (another resolver setup, another drop-in directory). */
  readonly undo: readonly ChangeRecord[];
}

/**
 * What happens to the drop-in: written where there is none, rewritten when ours differs, left
 * when ours is current, and a file that is not ours (no header) is taken over.
 */
export function dropInAction(before: FileState, content: string): DropInAction {
  if (before.kind === 'absent') return 'create';
  if (before.kind === 'file' && isManaged(before.bytes))
    return text(before) === content ? 'unchanged' : 'update';
  return 'take-over';
}

/** Pure: what apply would do on a host with these facts. */
export function planDns(s: DnsSettings, facts: HostFacts): DnsPlan {
  const base = kubednsInput(s);
  const choice = chooseResolver(s.dns.resolver, facts.resolver);
  const domains = [forwardedDomain(base), ...localNames(base).map((n) => n.name)].filter(
    (d): d is string => d !== undefined,
  );
  const resolver = planResolver(choice, facts.resolver, { domains });
  const content = renderKubedns(kubednsInput(s, resolver.upstreamResolvFile));
  const before = facts.dropIn;
  const undo = (facts.state?.changes ?? []).filter((c) =>
    c.role === 'resolver' ? !resolver.owned.includes(c.path) : c.path !== dropInPath(s),
  );
  return {
    dropInPath: dropInPath(s),
    content,
    dropIn: dropInAction(before, content),
    dropInBefore: before,
    names: nameCount(base),
    resolver,
    undo,
  };
}
