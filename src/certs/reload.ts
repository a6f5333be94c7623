import type { CaConfig } from '../config/types';
import { formatDuration, isoTime as iso } from '../lib/duration';
import type { Logger } from '../observe/index';
import type { SettingsChange } from './policy';

/**
 * What a reload (SIGHUP) did to the certificate settings, for the operator: what applies at the
 * next CSR and when that is, and what needs a restart (policy.ts's settingsChange decides).
 */
export function logSettingsChange(
  log: Logger,
  change: SettingsChange,
  prev: CaConfig,
  nextRenewal: number | undefined,
  now: number,
): void {
  const { applied, restartNeeded } = change;
  if (applied.length > 0) {
    const at = nextRenewal;
    const when =
      at === undefined
        ? ''
        : `, next renewal at ${iso(at)} (in ${formatDuration(Math.max(0, at - now))})`;
    log.info(
      { applied, nextRenewal: at !== undefined ? iso(at) : undefined },
      `certificate settings changed by reload: ${applied.join(', ')}; they apply at the next CSR${when}`,
    );
  }
  if (restartNeeded.length > 0) {
    log.warn(
      { restartNeeded },
      `certificate settings changed by reload that are only read at start: ${restartNeeded.join(', ')}; the values from start stay in force (CITADEL_ENV ${prev.env}, CERTS_DIR ${prev.certsDir}); restart the agent to apply them`,
    );
  }
}
