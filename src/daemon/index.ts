/**
 * The daemon around the agent, shared by `run` and `dev` (runner.ts: signals, reload, test
 * hooks, status file, monitoring, exit code), and what `status` asks it (ask.ts).
 */
export { runDaemon, withAgentLock, type DaemonSpec } from './runner';
export { isLoopback, Monitoring } from './monitoring';
export { askDaemon, judgeAt, locateStateDir, ASK_TIMEOUT_MS, type DaemonView } from './ask';
