import t from 'tap';
import {
  formatDuration,
  formatDurationSetting,
  formatShortDuration,
  isoTime,
} from '../../src/lib/duration';

const H = 3_600_000;

t.test('durations print as 1.0 did', async (t) => {
  t.equal(formatDuration(1079 * H + 59 * 60_000 + 59_800), '1079h59m59.8s');
  t.equal(formatDuration(29 * 60_000 + 59_000), '29m59s');
  t.equal(formatDuration(1500), '1.5s');
  t.equal(formatDuration(0), '0s');
});

t.test('short durations for log lines: tenths below 10 s, minutes from 2 minutes', async (t) => {
  t.equal(formatShortDuration(0), '0s');
  t.equal(formatShortDuration(200), '0.2s');
  t.equal(formatShortDuration(9_949), '9.9s');
  t.equal(formatShortDuration(30_000), '30s');
  t.equal(formatShortDuration(119_400), '119s');
  t.equal(formatShortDuration(125_000), '2m5s');
  t.equal(formatShortDuration(2 * H), '120m0s');
});

t.test('durations as a setting is written: the largest unit that divides', async (t) => {
  t.equal(formatDurationSetting(H), '1h');
  t.equal(formatDurationSetting(2160 * H), '2160h');
  t.equal(formatDurationSetting(10 * 60_000), '10m');
  t.equal(formatDurationSetting(90 * 60_000), '90m');
  t.equal(formatDurationSetting(45_000), '45s');
  t.equal(formatDurationSetting(1500), '1.5s');
});

t.test('instants as ISO 8601, UTC', async (t) => {
  t.equal(isoTime(Date.UTC(2026, 0, 1, 2, 3, 4, 5)), '2026-01-01T02:03:04.005Z');
  t.equal(isoTime(0), '1970-01-01T00:00:00.000Z');
});
