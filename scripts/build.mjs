#!/usr/bin/env node
/**
 * `npm run build`: the Node runtime and the CLI as plain JavaScript in dist/, run with `node` (no tsx at run time).
 *
 * Our code and the npm packages it uses are bundled: one module graph instead of hundreds of files, each of which
 * would keep its module record and source text in memory (about 10 MB less RSS at idle, measured by bench/footprint.ts).
 * Two stay external and are loaded from node_modules: better-sqlite3 (a native addon) and the AWS SDK (large, only
 * loaded with DynamoDB; Lambda has its own). Code split: what the server loads only for some configurations (the
 * DynamoDB store, DAV with CALDAV/CARDDAV/GAL URLs, ManageSieve with SIEVE, Bearer tokens, protocol capture) sits in
 * chunks that dynamic import() loads on first use.
 *
 *   node scripts/build.mjs [--outdir DIR] [--metafile]   (--metafile also writes meta.json: what each output holds)
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { build } from 'esbuild';

const ROOT = join(import.meta.dirname, '..');
const at = process.argv.indexOf('--outdir');
const OUT = at > 0 ? resolve(process.argv[at + 1]) : join(ROOT, 'dist');

rmSync(OUT, { recursive: true, force: true });
const result = await build({
  absWorkingDir: ROOT,
  entryPoints: { node: 'src/runtimes/node.ts', cli: 'src/cli.ts' },
  outdir: OUT,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20.18',
  external: ['better-sqlite3', '@aws-sdk/*'],
  // The bundled CommonJS packages call require() for Node's built-ins; an ES module has no require of its own.
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
  },
  chunkNames: 'chunks/[name]-[hash]',
  // A stack trace maps back to src/ with NODE_OPTIONS=--enable-source-maps (off by default: it costs memory).
  sourcemap: 'linked',
  metafile: true,
  logLevel: 'warning',
});
if (process.argv.includes('--metafile')) writeFileSync(join(OUT, 'meta.json'), JSON.stringify(result.metafile));
const size = (f) => `${(result.metafile.outputs[relative(ROOT, join(OUT, f))].bytes / 1024).toFixed(0)} KiB`;
const chunkBytes = Object.entries(result.metafile.outputs)
  .filter(([f]) => f.endsWith('.js') && f.includes('/chunks/'))
  .reduce((n, [, o]) => n + o.bytes, 0);
console.log(
  `${OUT}: node.js ${size('node.js')}, cli.js ${size('cli.js')}, chunks/ ${(chunkBytes / 1024).toFixed(0)} KiB`,
);
