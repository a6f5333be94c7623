import type { Component, ComponentStatus } from '../component';
import type { Logger } from '../observe/index';
import { readFileState, under, type FileState } from './files';
import type { DnsHost } from './host';
import { isManaged } from './render';
import { dropInPath, type DnsSettings } from './settings';

/**
 * DNS is off (no DNS variables set) but the drop-in directory holds a kubedns: what to tell the
 * operator, in the daemon's log at start and in `dns plan`.
 */
export interface OffNote {
  /** True when the file is the agent's own (it stays until `dns clean`), false when hand-placed. */
  readonly managed: boolean;
  readonly message: string;
}

/** Pure: the note for what `dropIn` (host path) holds; undefined when there is nothing there. */
export function offNoteFor(dropIn: string, cur: FileState): OffNote | undefined {
  if (cur.kind === 'absent') return undefined;
  if (cur.kind === 'file' && isManaged(cur.bytes)) {
    return {
      managed: true,
      message: `${dropIn} was written by the agent but no DNS variables are set any more; it stays until \`istio-node-agent dns clean\``,
    };
  }
  return {
    managed: false,
    message: `${dropIn} was placed by hand and no DNS variables are set: the agent leaves it alone`,
  };
}

/** When DNS is off: what the drop-in directory holds, for the log and `dns plan`. */
export async function offNote(s: DnsSettings, root: string): Promise<OffNote | undefined> {
  const p = dropInPath(s);
  return offNoteFor(p, await readFileState(under(root, p)));
}

/**
 * What the daemon has to do about DNS when it is off: log the note (a warning for the agent's
 * own drop-in, which stays until `dns clean`; info for a hand-placed one) at preflight, read-only.
 * Nothing else: it changes nothing and is not part of STATUS= or the status file
 * (`inStatus: false`), so the agent reports as if there were no DNS component.
 */
export class DnsOffNotice implements Component {
  readonly name = 'dns';
  readonly inStatus = false;

  constructor(
    private readonly settings: DnsSettings,
    private readonly host: DnsHost,
    private readonly log: Logger,
  ) {}

  async preflight(): Promise<void> {
    const note = await offNote(this.settings, this.host.root).catch(() => undefined);
    if (note?.managed) this.log.warn({ component: 'dns' }, note.message);
    else if (note) this.log.info({ component: 'dns' }, note.message);
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }

  status(): ComponentStatus {
    return { ready: true, summary: 'dns off' };
  }
}
