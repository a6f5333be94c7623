export { createLogger, silentLogger, JOURNAL_PRIORITY, type Logger, type LogLevel } from './logger';
