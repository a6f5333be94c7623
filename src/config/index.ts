export type * from './types';
export {
  loadConfig,
  collectConfig,
  readRaw,
  buildConfig,
  DEFAULT_CLUSTER_ENV,
  DEFAULT_SIDECAR_ENV,
  type ConfigSource,
  type LoadResult,
} from './load';
export { parseEnvFile, scanEnvFile, type EnvEntry } from './env-file';
export { editDistance, nearestName } from './names';
export { RawEnv, parseDuration } from './raw';
export { parseCidr, type Cidr } from './net';
export { DEFAULT_STATE_DIR, DEFAULT_MONITORING_ADDR } from './sections/core';
