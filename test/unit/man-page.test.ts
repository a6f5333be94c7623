// The man page is generated from the CLI's own help and docs/configuration.md: every command and
// every variable must be in it, and what it says of the signals must match docs/operations.md.
import t from 'tap';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseConfigDoc } from '../../scripts/deb/env-templates';
import {
  commandsFromHelp,
  renderManPage,
  usageFromHelp,
  type ManCommand,
} from '../../scripts/deb/man-page';
import { main } from '../../src/cli/index';
import { COMMANDS } from '../../src/cli/commands';

const root = path.resolve(__dirname, '../..');
const template = readFileSync(path.join(root, 'debian/istio-node-agent.1.in'), 'utf8');
const sections = parseConfigDoc(readFileSync(path.join(root, 'docs/configuration.md'), 'utf8'));

async function help(argv: string[]): Promise<string> {
  let out = '';
  await main(argv, { env: {}, out: (s) => (out += s), err: (s) => (out += s) });
  return out;
}

t.test('every command, with its usage, and every variable', async (t) => {
  const top = commandsFromHelp(await help(['--help']));
  t.same(
    top.map((c) => c.name),
    Object.keys(COMMANDS),
    'the help lists every command',
  );
  const commands: ManCommand[] = [];
  for (const c of top)
    commands.push({ ...c, usage: usageFromHelp(await help([c.name, '--help'])) });
  const page = renderManPage(template, {
    version: '1.2.3',
    date: '2026-01-02',
    commands,
    sections,
  });
  t.match(page, /^\.TH ISTIO-NODE-AGENT 1 "2026-01-02" "istio-node-agent 1\.2\.3"/);
  for (const c of commands) {
    t.ok(c.usage.startsWith(`istio-node-agent ${c.name}`), `${c.name}: a usage line`);
    t.ok(page.includes(`.B ${c.usage.replace(/-/g, '\\-')}`), `${c.name} documented`);
  }
  const vars = sections.flatMap((s) => s.variables.map((v) => v.name));
  t.ok(vars.length > 60, `${vars.length} variables`);
  for (const v of vars) t.ok(page.includes(`.B ${v}`), `${v} documented`);
  for (const h of ['SIGNALS', 'EXIT STATUS', 'FILES', 'CONFIGURATION']) t.match(page, `.SH ${h}`);
  t.notMatch(page, /@[A-Z]+@/, 'no placeholder left');
});

t.test('signals: the man page and docs/operations.md agree that stop keeps DNS', async (t) => {
  const ops = readFileSync(path.join(root, 'docs/operations.md'), 'utf8');
  t.match(ops, /DNS stays|leaves both in place|Stop leaves/i, 'operations.md: DNS stays on stop');
  const sig = template.slice(template.indexOf('.SH SIGNALS'), template.indexOf('.SH EXIT STATUS'));
  t.match(sig, /DNS drop-in and the resolver change stay/);
  t.notMatch(sig, /DNS changes are removed/);
});
