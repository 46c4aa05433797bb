/**
 * The Cloudflare environment of a new tenant: `activesync-edge deploy render-wrangler` renders it from
 * infra/tenants/<tenant>.json, and wrangler itself accepts it (`wrangler deploy --dry-run --env <tenant>`, offline):
 * the Worker bundles, with the tenant's variables, its Durable Object binding and cron.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { renderWranglerEnv, writeWranglerEnv } from '../../../infra/cloudflare/render-wrangler.ts';
import { loadTenantDeployment, parseTenantDeployment } from '../../../infra/tenant.ts';

const ROOT = join(import.meta.dirname, '../../..');
const run = promisify(execFile);

/** The repository's wrangler.toml in a scratch folder, `main` and the `[alias]` modules pointing back at the source. */
function scratchConfig(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ase-wrangler-'));
  const path = join(dir, 'wrangler.toml');
  const config = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8')
    .replace(/^main = .*$/m, `main = ${JSON.stringify(join(ROOT, 'src/runtimes/cloudflare/worker.ts'))}`)
    .replace(/= "\.\/(src\/[^"]+)"/g, (_, source: string) => `= ${JSON.stringify(join(ROOT, source))}`);
  writeFileSync(path, config);
  return path;
}

describe('deploy render-wrangler', () => {
  it('prints the environment from the CLI, the same as the module renders it', async () => {
    const { stdout } = await run(
      process.execPath,
      [join(ROOT, 'bin/activesync-edge.js'), 'deploy', 'render-wrangler', '--tenant', 'acme'],
      { cwd: ROOT },
    );
    expect(stdout).toBe(renderWranglerEnv(loadTenantDeployment('acme')));
    expect(stdout).toContain('[env.acme]');
    expect(stdout).toContain('npx wrangler secret put IMAP_MASTER_PASSWORD --env acme');
  });

  it('renders a tenant with STARTTLS as it is: workerd upgrades over cloudflare:sockets', () => {
    const starttls = parseTenantDeployment({
      tenant: 'starttls',
      imap: { host: 'imap.starttls.example', secure: false },
      smtp: { host: 'smtp.starttls.example', secure: false },
    });
    const env = renderWranglerEnv(starttls);
    expect(env).toContain('IMAP_SECURE = "false"');
    expect(env).toContain('SMTP_SECURE = "false"');
  });

  it('appends to a wrangler.toml once, and refuses a second time', () => {
    const path = scratchConfig();
    const acme = loadTenantDeployment('acme');
    writeWranglerEnv(acme, path);
    expect(readFileSync(path, 'utf8')).toContain('[env.acme.vars]');
    expect(() => writeWranglerEnv(acme, path)).toThrow(/already has \[env\.acme\]/);
  });

  it('is accepted by wrangler: a dry-run deploy of the tenant environment bundles with its bindings, offline', async () => {
    const path = scratchConfig();
    writeWranglerEnv(loadTenantDeployment('acme'), path);
    const outdir = mkdtempSync(join(tmpdir(), 'ase-wrangler-out-'));
    const { stdout, stderr } = await run(
      join(ROOT, 'node_modules/.bin/wrangler'),
      ['deploy', '--dry-run', '--env', 'acme', '--config', path, '--outdir', outdir],
      {
        cwd: ROOT,
        env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_API_TOKEN: '' },
        timeout: 90_000,
      },
    );
    const output = stdout + stderr;
    expect(output).not.toMatch(/Unexpected fields|is not inherited|Processing .* configuration:\s*\n\s*- /);
    expect(output).toContain('env.STATE (StateObject)');
    expect(output).toMatch(/IMAP_HOST.*imap\.acme\.example/);
    expect(output).toMatch(/--dry-run: exiting now/);
  }, 120_000);
});
