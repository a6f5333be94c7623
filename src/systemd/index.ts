export {
  createNotifier,
  spawnTransport,
  statusLine,
  type Notifier,
  type NotifyTransport,
} from './notify';
