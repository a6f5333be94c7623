import t from 'tap';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { ERROR_CODES } from '../../src/lib/errors';
import { RawEnv } from '../../src/config/raw';
import { buildConfig } from '../../src/config/load';
import { METRIC_DEFS } from '../../src/observe/metric-defs';

const root = path.resolve(__dirname, '../..');
const configDoc = readFileSync(path.join(root, 'docs/configuration.md'), 'utf8');
const errorsDoc = readFileSync(path.join(root, 'docs/errors.md'), 'utf8');

function docVariables(): Set<string> {
  const names = new Set<string>();
  for (const m of configDoc.matchAll(/^\| `([A-Z_][A-Z0-9_]*)` \|/gm)) names.add(m[1]!);
  return names;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    return statSync(p).isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

t.test('every variable the config parsers read is in docs/configuration.md', async (t) => {
  const raw = new RawEnv();
  buildConfig(raw, { cluster: 'c', sidecar: 's' });
  const documented = docVariables();
  t.ok(raw.read.size > 40, `parsers read ${raw.read.size} variables`);
  for (const name of raw.read) t.ok(documented.has(name), `${name} is documented`);
});

t.test('every process.env read in src/ is in docs/configuration.md', async (t) => {
  const documented = docVariables();
  const seen = new Set<string>();
  for (const f of sourceFiles(path.join(root, 'src'))) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/\benv\??\.([A-Z_][A-Z0-9_]*)\b/g)) seen.add(m[1]!);
    for (const m of text.matchAll(/\benv\[['"]([A-Z_][A-Z0-9_]*)['"]\]/g)) seen.add(m[1]!);
  }
  t.ok(seen.size > 0);
  for (const name of seen)
    t.ok(documented.has(name), `${name} (read from the environment in src/) is documented`);
});

t.test('every documented variable is read by the code', async (t) => {
  const raw = new RawEnv();
  buildConfig(raw, { cluster: 'c', sidecar: 's' });
  const src = sourceFiles(path.join(root, 'src'))
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n');
  for (const name of docVariables()) {
    t.ok(raw.read.has(name) || src.includes(name), `${name} is documented and used`);
  }
});

t.test(
  'docs/errors.md and the error catalogue list the same codes with the same exit codes',
  async (t) => {
    const documented = new Map<string, { exit: number; retryable: boolean }>();
    for (const m of errorsDoc.matchAll(/^\| `(AGENT_E_[A-Z0-9_]+)` \| (\d+) \| (yes|no) \|/gm)) {
      documented.set(m[1]!, { exit: Number(m[2]), retryable: m[3] === 'yes' });
    }
    for (const [code, spec] of Object.entries(ERROR_CODES)) {
      t.same(
        documented.get(code),
        { exit: spec.exit, retryable: spec.retryable },
        `${code} documented with exit ${spec.exit}`,
      );
    }
    for (const code of documented.keys())
      t.ok(code in ERROR_CODES, `${code} in docs exists in code`);
  },
);

t.test('every AGENT_E_ code used in src/ exists in the catalogue', async (t) => {
  for (const f of sourceFiles(path.join(root, 'src'))) {
    for (const m of readFileSync(f, 'utf8').matchAll(/'(AGENT_E_[A-Z0-9_]+)'/g)) {
      t.ok(m[1]! in ERROR_CODES, `${m[1]} (${path.relative(root, f)}) is in the catalogue`);
    }
  }
});

t.test('every metric is in the table of docs/operations.md, and no other', async (t) => {
  const ops = readFileSync(path.join(root, 'docs/operations.md'), 'utf8');
  const section = ops.slice(ops.indexOf('#### Metrics'), ops.indexOf('Example alerts'));
  const documented = new Set([...section.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]!));
  for (const name of Object.keys(METRIC_DEFS))
    t.ok(documented.has(name), `istio_node_agent_${name} documented`);
  for (const name of documented) t.ok(name in METRIC_DEFS, `${name} in docs exists in code`);
  for (const [name, def] of Object.entries(METRIC_DEFS))
    t.match(section, `| \`${name}\` | ${def.type} |`, `${name}: type ${def.type} in the docs`);
});
