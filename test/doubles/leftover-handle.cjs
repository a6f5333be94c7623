/**
 * Test double, preloaded into the agent with `node --require`: opens an HTTP request to
 * LEFTOVER_HANDLE_PORT on 127.0.0.1 that the test's server accepts and never answers, the way a
 * hung request (e.g. to a metadata server) would stay open. Nothing in the agent knows about it,
 * so it is the leftover handle that must not keep the process alive after `run` is done.
 */
'use strict';
const http = require('node:http');
const port = Number(process.env.LEFTOVER_HANDLE_PORT);
if (port > 0) {
  const req = http.get({ host: '127.0.0.1', port, path: '/hang' });
  req.on('error', () => undefined);
}
