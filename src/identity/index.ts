export * from './gce';
