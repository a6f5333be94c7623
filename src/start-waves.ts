/** What startWaves reads of a component. */
export interface StartOrder {
  readonly name: string;
  /**
   * Components that must have started before this one starts (by name; one that is off is
   * ignored). Undefined: every component listed before it (the registry's order).
   */
  readonly startsAfter?: readonly string[];
}

/**
 * The components grouped into waves, in the registry's order: the components of one wave start
 * together, a wave once the one before it has started. A component joins the wave under
 * construction unless it must start after a member of it; by default it must start after every
 * earlier one, so components that say nothing start one by one.
 */
export function startWaves<C extends StartOrder>(components: readonly C[]): C[][] {
  const waves: C[][] = [];
  let wave: C[] = [];
  for (const c of components) {
    const after = c.startsAfter;
    const waits = after === undefined ? wave.length > 0 : wave.some((w) => after.includes(w.name));
    if (waits) {
      waves.push(wave);
      wave = [];
    }
    wave.push(c);
  }
  if (wave.length > 0) waves.push(wave);
  return waves;
}
