export type * from './types';
export {
  loadConfig,
  readRaw,
  buildConfig,
  DEFAULT_CLUSTER_ENV,
  DEFAULT_SIDECAR_ENV,
  type LoadResult,
} from './load';
export { parseEnvFile, type EnvEntry } from './env-file';
export { RawEnv, parseDuration } from './raw';
export { parseCidr, type Cidr } from './net';
export { DEFAULT_STATE_DIR, DEFAULT_MONITORING_ADDR } from './sections/core';
