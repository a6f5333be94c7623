import { loadConfig, type LoadResult } from '../config/index';
import { createLogger, type Logger } from '../observe/index';

/** Loads and validates configuration; an invalid file throws AgentError (exit 78). */
export async function loadForCommand(env: NodeJS.ProcessEnv, log?: Logger): Promise<LoadResult> {
  const r = await loadConfig(env);
  for (const w of r.warnings)
    (log ?? createLogger({ level: 'warn' })).warn({ component: 'config' }, w);
  return r;
}
