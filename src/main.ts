import { main } from './cli/index';

// The CLI entry. Exit codes: 0 ok, 1 runtime failure, 2 usage, 78 configuration error.
main(process.argv.slice(2), {
  env: process.env,
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
}).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`istio-node-agent: ${String(e)}\n`);
    process.exitCode = 1;
  },
);
