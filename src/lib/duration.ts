/**
 * Times and durations as text, in one place. Durations in the five forms the agent writes: Go's
 * exact form (1.0's log lines, config errors, certificate logs), a rounded short form (the
 * sidecar's restart and backoff lines), a setting's form (what one would write in a variable or
 * an option, e.g. the dev CA's TTL), as people say it (`check`'s "90 days left"), and in its two
 * largest units (`status`'s "3d4h").
 */

const HOUR_MS = 3_600_000;
const MINUTE_MS = 60_000;

/** Go-style duration text as 1.0 logged it ("Will renew cert in 1079h59m59.8s"). */
export function formatDuration(ms: number): string {
  if (ms <= 0) return '0s';
  const h = Math.floor(ms / HOUR_MS);
  const m = Math.floor((ms % HOUR_MS) / MINUTE_MS);
  const s = (ms % MINUTE_MS) / 1000;
  const sec = Number.isInteger(s) ? `${s}s` : `${s.toFixed(3).replace(/0+$/, '')}s`;
  if (h > 0) return `${h}h${m}m${sec}`;
  if (m > 0) return `${m}m${sec}`;
  return sec;
}

/** Rounded for a log line: "0.2s" (tenths below 10 s), "30s", "2m5s" (from 2 minutes). */
export function formatShortDuration(ms: number): string {
  if (ms < 10_000) return `${Math.round(ms / 100) / 10}s`;
  const s = Math.round(ms / 1000);
  return s < 120 ? `${s}s` : `${Math.floor(s / 60)}m${s % 60}s`;
}

/** In the largest unit that divides it, as a setting is written: "1h", "90m", "45s", "1.5s". */
export function formatDurationSetting(ms: number): string {
  if (ms % HOUR_MS === 0) return `${ms / HOUR_MS}h`;
  if (ms % MINUTE_MS === 0) return `${ms / MINUTE_MS}m`;
  return `${ms / 1000}s`;
}

/** An instant (ms since the epoch) as ISO 8601 in UTC, as logs, status and messages show it. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}

const DAY_MS = 86_400_000;

/**
 * A duration as people say it, rounded in its largest sensible unit: "90 days", "5 hours",
 * "12 minutes", "1 second" (for `check`'s "90 days left"). A unit is used from two of it up, so
 * 36 hours stays "36 hours" and 90 minutes "90 minutes". Negative is read as positive.
 */
export function formatHumanDuration(ms: number): string {
  const abs = Math.abs(ms);
  const unit = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
  if (abs >= 2 * DAY_MS) return unit(Math.round(abs / DAY_MS), 'day');
  if (abs >= 2 * HOUR_MS) return unit(Math.round(abs / HOUR_MS), 'hour');
  if (abs >= 2 * MINUTE_MS) return unit(Math.round(abs / MINUTE_MS), 'minute');
  return unit(Math.round(abs / 1000), 'second');
}

/** About how long, in its two largest units, for people reading a status: "3d4h", "5h2m", "4m10s", "12s". */
export function formatApprox(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d${h}h`;
  if (h > 0) return `${h}h${m}m`;
  if (m > 0) return `${m}m${s % 60}s`;
  return `${s}s`;
}
