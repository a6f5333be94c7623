/**
 * The exit code a process settles with, or 'hung' when it has not exited within `ms`: for tests
 * that check a stop cannot hang (the timer is cleared either way, so nothing is kept alive).
 */
export async function exitWithin<T>(exited: Promise<T>, ms: number): Promise<T | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      exited,
      new Promise<'hung'>((r) => {
        timer = setTimeout(() => {
          r('hung');
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
