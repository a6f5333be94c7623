// Renders istio-node-agent(1) from what cannot drift: the executable's own --help (every command
// and its usage line) and docs/configuration.md (every variable, its default and meaning, by
// group), around the hand-written sections of debian/istio-node-agent.1.in (description, files,
// signals, exit status). Usage:
//   node --import tsx scripts/deb/man-page.ts <executable> <version> <date>  > istio-node-agent.1
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseConfigDoc, type DocSection } from './env-templates';

export interface ManCommand {
  readonly name: string;
  readonly summary: string;
  /** The command's `Usage:` line(s), without the word Usage. */
  readonly usage: string;
}

/** groff-escapes text: backslashes, and a leading dot or quote that would read as a request. */
export function roff(text: string): string {
  return text.replace(/\\/g, '\\e').replace(/-/g, '\\-').replace(/^[.']/gm, '\\&$&');
}

/** Markdown inline code and emphasis to plain text (the man page has its own fonts). */
export function plain(md: string): string {
  return md.replace(/`([^`]*)`/g, '$1').replace(/\*\*([^*]*)\*\*/g, '$1');
}

/** `name  summary` lines of the top-level --help's Commands: block. */
export function commandsFromHelp(help: string): { name: string; summary: string }[] {
  const out: { name: string; summary: string }[] = [];
  let on = false;
  for (const line of help.split('\n')) {
    if (/^Commands:/.test(line)) {
      on = true;
      continue;
    }
    if (!on) continue;
    if (line.trim() === '') break;
    const m = /^\s+(\S+)\s+(.*)$/.exec(line);
    if (m) out.push({ name: m[1]!, summary: m[2]!.trim() });
  }
  return out;
}

/** The `Usage:` paragraph of a command's --help, joined into one line. */
export function usageFromHelp(help: string): string {
  const lines = help.split('\n');
  const i = lines.findIndex((l) => l.startsWith('Usage:'));
  if (i < 0) return '';
  const out = [lines[i]!.replace(/^Usage:\s*/, '')];
  for (const l of lines.slice(i + 1)) {
    if (l.trim() === '' || !/^\s/.test(l)) break;
    out.push(l.trim());
  }
  return out.join(' ');
}

export function renderCommands(commands: readonly ManCommand[]): string {
  return commands
    .map((c) => [`.TP`, `.B ${roff(c.usage || c.name)}`, roff(c.summary)].join('\n'))
    .join('\n');
}

/** Every variable of docs/configuration.md, by section, as .SS groups of .TP entries. */
export function renderVariables(sections: readonly DocSection[]): string {
  const out: string[] = [];
  for (const s of sections) {
    if (s.variables.length === 0) continue;
    out.push(`.SS ${roff(plain(s.title))}`);
    for (const v of s.variables) {
      out.push('.TP', `.B ${roff(v.name)}`, roff(`${plain(v.meaning)} Default: ${plain(v.def)}.`));
    }
  }
  return out.join('\n');
}

export function renderManPage(
  template: string,
  o: {
    version: string;
    date: string;
    commands: readonly ManCommand[];
    sections: readonly DocSection[];
  },
): string {
  const page = template
    .replace(/@VERSION@/g, o.version)
    .replace(/@DATE@/g, o.date)
    .replace(/^@COMMANDS@$/m, () => renderCommands(o.commands))
    .replace(/^@VARIABLES@$/m, () => renderVariables(o.sections));
  if (/@[A-Z]+@/.test(page)) throw new Error('a placeholder of the man page template is left');
  return page;
}

function main(): void {
  const [exe, version, date] = process.argv.slice(2);
  if (!exe || !version || !date)
    throw new Error('usage: man-page.ts <executable> <version> <date>');
  const run = (args: string[]): string =>
    execFileSync(exe, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const commands = commandsFromHelp(run(['--help'])).map((c) => ({
    ...c,
    usage: usageFromHelp(run([c.name, '--help'])),
  }));
  if (commands.length === 0) throw new Error("no commands in the executable's --help");
  const root = path.resolve(__dirname, '../..');
  const template = readFileSync(path.join(root, 'debian/istio-node-agent.1.in'), 'utf8');
  const sections = parseConfigDoc(readFileSync(path.join(root, 'docs/configuration.md'), 'utf8'));
  process.stdout.write(renderManPage(template, { version, date, commands, sections }));
}

if (require.main === module) main();
