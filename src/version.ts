// Replaced at build time by esbuild's `define`; the fallback serves tests run from source.
declare const __AGENT_VERSION__: string | undefined;
/** Where the package puts the reference (docs/*.md of the source, gzipped). */
export const DOC_DIR = '/usr/share/doc/istio-node-agent';

export const VERSION: string =
  typeof __AGENT_VERSION__ === 'string' ? __AGENT_VERSION__ : '0.0.0-dev';
