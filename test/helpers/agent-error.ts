import type { Test } from 'tap';
import { AgentError } from '../../src/lib/errors';

/** Asserts that `p` rejects with an AgentError of `code` (and a message matching `pattern`). */
export async function rejectsWithCode(
  t: Test,
  p: Promise<unknown>,
  code: string,
  pattern?: RegExp,
): Promise<AgentError> {
  try {
    await p;
  } catch (e) {
    t.ok(e instanceof AgentError, `an AgentError (${String(e)})`);
    const err = e as AgentError;
    t.equal(err.code, code, err.message);
    if (pattern) t.match(err.message, pattern);
    return err;
  }
  t.fail(`expected ${code}, the promise resolved`);
  return new AgentError('AGENT_E_INTERNAL', 'resolved');
}
