/**
 * The Lambda bundle: src/runtimes/lambda.ts and everything it imports in one ES module (`lambda.mjs`), for Node.js 22
 * on arm64. The same esbuild settings as serverless.yml's serverless-esbuild section. The AWS SDK stays outside: the
 * Lambda runtime provides it.
 */
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export const LAMBDA_ENTRY = join(import.meta.dirname, '../../src/runtimes/lambda.ts');

/** Writes `<outdir>/lambda.mjs`; handlers are `lambda.handler` and `lambda.watch`. Returns the file's path. */
export async function bundleLambda(outdir: string, options: { minify?: boolean } = {}): Promise<string> {
  mkdirSync(outdir, { recursive: true });
  const outfile = join(outdir, 'lambda.mjs');
  await build({
    entryPoints: [LAMBDA_ENTRY],
    outfile,
    bundle: true,
    minify: options.minify ?? true,
    platform: 'node',
    target: 'node22',
    format: 'esm',
    external: ['@aws-sdk/*'],
    // Some bundled CommonJS dependencies call require(); an ES module has none of its own.
    banner: {
      js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
    },
    logLevel: 'warning',
  });
  return outfile;
}
