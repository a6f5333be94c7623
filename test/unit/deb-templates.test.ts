import t from 'tap';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { buildConfig } from '../../src/config/load';
import { parseEnvFile } from '../../src/config/env-file';
import { RawEnv } from '../../src/config/raw';
import {
  literalDefault,
  parseConfigDoc,
  renderTemplate,
  TEMPLATE_SECTIONS,
} from '../../scripts/deb/env-templates';

// The conffile templates the .deb installs are generated from docs/configuration.md. They must
// list every variable of their sections, set nothing while commented, and offer only values
// that are the code's real defaults.

const doc = readFileSync(path.resolve(__dirname, '../../docs/configuration.md'), 'utf8');
const sections = parseConfigDoc(doc);
const files = ['cluster.env', 'sidecar.env'] as const;

/** The configuration's values, without the fields that record where a value came from. */
function values(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(values);
  if (x === null || typeof x !== 'object') return x;
  return Object.fromEntries(
    Object.entries(x as Record<string, unknown>)
      .filter(([k]) => !k.endsWith('Origin'))
      .map(([k, v]) => [k, values(v)]),
  );
}

void t.test('every variable of the templated sections appears, commented out', (t) => {
  for (const file of files) {
    const text = renderTemplate(file, sections);
    t.same(parseEnvFile(text, file), [], `${file} sets nothing as installed`);
    for (const title of TEMPLATE_SECTIONS[file]) {
      const s = sections.find((x) => x.title === title);
      t.ok(s && s.variables.length > 0, `docs/configuration.md has "${title}" with variables`);
      for (const v of s?.variables ?? [])
        t.match(text, new RegExp(`^#${v.name}=`, 'm'), `${file}: ${v.name}`);
    }
  }
  t.end();
});

void t.test('uncommenting every offered value gives exactly the default configuration', (t) => {
  const defaults = buildConfig(new RawEnv(), { cluster: 'c', sidecar: 's' });
  const raw = new RawEnv();
  let offered = 0;
  for (const file of files) {
    const uncommented = renderTemplate(file, sections).replace(/^#([A-Z_][A-Z0-9_]*=)/gm, '$1');
    for (const e of parseEnvFile(uncommented, file)) {
      raw.set(e.key, e.value, file, e.line);
      if (e.value !== '') offered++;
    }
  }
  t.ok(offered > 30, `${offered} variables offer their default as a value`);
  t.same(values(buildConfig(raw, { cluster: 'c', sidecar: 's' })), values(defaults));
  t.end();
});

void t.test('literalDefault offers only single literal defaults', (t) => {
  t.equal(literalDefault('`15001`'), '15001');
  t.equal(literalDefault('`2160h` (90 days)'), '2160h');
  t.equal(literalDefault('`istio-pilot.$ISTIO_SYSTEM_NAMESPACE:$ISTIO_PILOT_PORT`'), '');
  t.equal(literalDefault('(empty)'), '');
  t.equal(literalDefault('primary non-loopback address'), '');
  t.end();
});

void t.test('a section missing from the doc is an error, not an empty template', (t) => {
  t.throws(() => renderTemplate('sidecar.env', []), /no section "## Sidecar"/);
  t.end();
});
