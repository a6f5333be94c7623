export {
  createNotifier,
  spawnTransport,
  statusLine,
  watchdogInterval,
  NOTIFY_TIMEOUT_MS,
  type Notifier,
  type NotifyTransport,
} from './notify';
