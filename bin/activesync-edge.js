#!/usr/bin/env node
// In a checkout (src/ beside bin/): the TypeScript CLI through tsx, so that it is always the code as it stands. In an
// installation without the sources (the container image): the compiled CLI of `npm run build`, with plain node.
import { existsSync } from 'node:fs';

let cli;
if (existsSync(new URL('../src/cli.ts', import.meta.url))) {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import('../src/cli.ts');
} else {
  cli = await import('../dist/cli.js');
}
process.exitCode = await cli.main(process.argv);
