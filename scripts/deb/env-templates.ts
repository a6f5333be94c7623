// Renders the commented templates of cluster.env and sidecar.env that the package installs as
// conffiles, from docs/configuration.md: every variable of the file's sections, commented out,
// with its meaning and default. Usage: node --import tsx scripts/deb/env-templates.ts <out-dir>
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

export interface DocVariable {
  readonly name: string;
  readonly def: string;
  readonly meaning: string;
}

export interface DocSection {
  readonly title: string;
  readonly variables: readonly DocVariable[];
}

/** `## Title` sections of the doc with the rows of their variable tables. */
export function parseConfigDoc(markdown: string): DocSection[] {
  const sections: { title: string; variables: DocVariable[] }[] = [];
  for (const line of markdown.split('\n')) {
    const h = /^## (.+)$/.exec(line);
    if (h) {
      sections.push({ title: h[1]!.trim(), variables: [] });
      continue;
    }
    const row = /^\| `([A-Z_][A-Z0-9_]*)` \| (.*?) \| (.*) \|$/.exec(line);
    if (row && sections.length > 0) {
      sections
        .at(-1)!
        .variables.push({ name: row[1]!, def: row[2]!.trim(), meaning: row[3]!.trim() });
    }
  }
  return sections;
}

/** Which doc sections go into which file. The others are environment-only (files, systemd, tests). */
export const TEMPLATE_SECTIONS: Record<'cluster.env' | 'sidecar.env', readonly string[]> = {
  'cluster.env': [
    'Agent',
    'Certificates and the CA',
    'Traffic capture (iptables)',
    'Cluster DNS (dnsmasq)',
  ],
  'sidecar.env': ['Sidecar'],
};

/**
 * The value to show after `#NAME=`: the default when it is one literal (`15001`), else empty
 * with the default spelled out in the comment (variables are not expanded, so
 * `istio-pilot.$ISTIO_SYSTEM_NAMESPACE:…` must not be offered as a value).
 */
export function literalDefault(def: string): string {
  const m = /^`([^`]*)`/.exec(def);
  if (!m) return '';
  const v = m[1]!;
  return /[$\s]/.test(v) ? '' : v;
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let cur = '';
  for (const word of text.split(/\s+/)) {
    if (cur && cur.length + 1 + word.length > width) {
      lines.push(cur);
      cur = word;
    } else cur = cur ? `${cur} ${word}` : word;
  }
  if (cur) lines.push(cur);
  return lines;
}

export function renderTemplate(
  file: 'cluster.env' | 'sidecar.env',
  sections: readonly DocSection[],
): string {
  const wanted = TEMPLATE_SECTIONS[file];
  const out: string[] = [
    `# /var/lib/istio/envoy/${file}: read by istio-node-agent (istio-auth-node-agent.service).`,
    '#',
    '# Every variable is listed below, commented out, with its default. Uncomment and set what you',
    '# need; an empty value means the default. Precedence: cluster.env < sidecar.env < environment.',
    '# Apply changes with `systemctl reload istio-auth-node-agent` (or restart).',
    '# Reference: man istio-node-agent(1) and /usr/share/doc/istio-node-agent/configuration.md.gz.',
  ];
  for (const title of wanted) {
    const s = sections.find((x) => x.title === title);
    if (!s) throw new Error(`docs/configuration.md has no section "## ${title}"`);
    out.push('', `# ---- ${title} ----`);
    for (const v of s.variables) {
      out.push('#');
      for (const l of wrap(`${v.name}: ${v.meaning}`, 94)) out.push(`# ${l}`);
      out.push(`# Default: ${v.def}`);
      out.push(`#${v.name}=${literalDefault(v.def)}`);
    }
  }
  return out.join('\n') + '\n';
}

function main(): void {
  const outDir = process.argv[2];
  if (!outDir) throw new Error('usage: env-templates.ts <out-dir>');
  const doc = readFileSync(path.resolve(__dirname, '../../docs/configuration.md'), 'utf8');
  const sections = parseConfigDoc(doc);
  mkdirSync(outDir, { recursive: true });
  for (const file of ['cluster.env', 'sidecar.env'] as const) {
    writeFileSync(path.join(outDir, file), renderTemplate(file, sections));
  }
}

if (require.main === module) main();
