/** What startPrerequisites reads of a component. */
export interface StartOrder {
  readonly name: string;
  /**
   * Components that must have started before this one starts (by name; one that is off, or that
   * comes later in the registry, is ignored). Undefined: every component listed before it.
   */
  readonly startsAfter?: readonly string[];
}

/**
 * For each component, the components that must have started before it starts: those it names
 * that are on and come before it in the registry, or, when it names none (`startsAfter`
 * undefined), every one before it. Only earlier ones count, so there is never a cycle. The agent
 * starts each component as soon as its own prerequisites have started: two components that do
 * not depend on each other never wait for each other, nor for a third that only one of them
 * needs.
 */
export function startPrerequisites<C extends StartOrder>(components: readonly C[]): Map<C, C[]> {
  const out = new Map<C, C[]>();
  components.forEach((c, i) => {
    const earlier = components.slice(0, i);
    const after = c.startsAfter;
    out.set(c, after === undefined ? earlier : earlier.filter((e) => after.includes(e.name)));
  });
  return out;
}
