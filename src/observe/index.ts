export {
  createLogger,
  prettyLine,
  silentLogger,
  wantsColor,
  JOURNAL_PRIORITY,
  type Logger,
  type LogLevel,
} from './logger';
export { MetricStore, NO_METRICS, type Metrics } from './metrics';
export {
  METRIC_DEFS,
  METRIC_PREFIX,
  fullName,
  type CounterName,
  type GaugeName,
  type HistogramName,
  type Labels,
  type MetricName,
} from './metric-defs';
export { loadPrometheus, type Prometheus } from './prometheus';
export {
  answer,
  startMonitorServer,
  ROUTES,
  SERVER_LIMITS,
  type MonitorServer,
  type MonitorSource,
} from './server';
export { readStatusFile, statusFilePath, writeStatusFile, STATUS_FILE } from './status-file';
