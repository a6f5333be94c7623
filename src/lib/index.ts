export * from './errors';
export * from './clock';
export * from './backoff';
export * from './atomic-write';
export * from './exec';
