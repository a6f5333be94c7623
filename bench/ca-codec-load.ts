// Why src/ca/wire.ts exists: the cost of getting a ready-to-call Citadel client in a fresh
// process, with our hand-written codec versus protobuf.js through @grpc/proto-loader (fromJSON of
// the same .proto files, the lightest proto-loader path: no .proto parsing at run time).
//
// Both variants are esbuild bundles (as the agent ships) that load grpc-js (timed from before its
// require), build the method definitions and encode one CsrRequest. They run alternately, N times each, on the same machine
// in one run; the output is the two medians and their ratio.
//
//   npx tsx bench/ca-codec-load.ts [N]
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { loadSync } from 'protobufjs';

const ROOT = path.resolve(__dirname, '..');
const N = Number(process.argv[2] ?? 25);

const REQUEST = `{ csrPem: Buffer.from('csr'), nodeAgentCredential: Buffer.from('chain'), credentialType: 'onprem', requestedTtlMinutes: 60 }`;

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-codec-'));
  try {
    const json = loadSync([
      path.join(ROOT, 'src/ca/protos/ca_service.proto'),
      path.join(ROOT, 'src/ca/protos/istioca.proto'),
    ]).toJSON();
    writeFileSync(
      path.join(dir, 'codec.ts'),
      `const t0 = process.hrtime.bigint();
const grpc = require('@grpc/grpc-js');
void grpc.credentials;
const { HANDLE_CSR } = require(${JSON.stringify(path.join(ROOT, 'src/ca/protos'))});
HANDLE_CSR.requestSerialize(${REQUEST});
process.stdout.write(String(Number(process.hrtime.bigint() - t0) / 1e6));`,
    );
    writeFileSync(
      path.join(dir, 'protoloader.ts'),
      `const t0 = process.hrtime.bigint();
const grpc = require('@grpc/grpc-js');
const { fromJSON } = require('@grpc/proto-loader');
const def = fromJSON(${JSON.stringify(json)} as never, { keepCase: true, longs: String, defaults: true, oneofs: true });
const pkg: any = grpc.loadPackageDefinition(def);
const m = pkg.istio.v1.auth.IstioCAService.service.HandleCSR;
m.requestSerialize({ csr_pem: Buffer.from('csr'), node_agent_credential: Buffer.from('chain'), credential_type: 'onprem', requested_ttl_minutes: 60 });
process.stdout.write(String(Number(process.hrtime.bigint() - t0) / 1e6));`,
    );
    for (const name of ['codec', 'protoloader']) {
      await build({
        entryPoints: [path.join(dir, `${name}.ts`)],
        outfile: path.join(dir, `${name}.cjs`),
        bundle: true,
        platform: 'node',
        target: 'node20',
        format: 'cjs',
        nodePaths: [path.join(ROOT, 'node_modules')],
        logLevel: 'error',
      });
    }
    const times: Record<string, number[]> = { codec: [], protoloader: [] };
    for (let i = 0; i < N; i++) {
      for (const name of ['codec', 'protoloader']) {
        const r = spawnSync(process.execPath, [path.join(dir, `${name}.cjs`)], {
          encoding: 'utf8',
        });
        if (r.status !== 0) throw new Error(`${name}: ${r.stderr}`);
        times[name]!.push(Number(r.stdout));
      }
    }
    const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
    const c = median(times.codec!);
    const p = median(times.protoloader!);
    console.log(
      `CA client ready (grpc-js + CSR method definitions + one encode), fresh process, N=${N}:`,
    );
    console.log(`  hand codec (src/ca/wire.ts):   median ${c.toFixed(1)} ms`);
    console.log(`  @grpc/proto-loader fromJSON:   median ${p.toFixed(1)} ms`);
    console.log(
      `  ratio proto-loader / codec:    ${(p / c).toFixed(2)}x (saves ${(p - c).toFixed(1)} ms)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

void main();
