/** `activesync-edge deploy …`: per-tenant deployment files (infra/). */
import type { Command } from 'commander';

export function addDeployCommands(program: Command): void {
  const deploy = program.command('deploy').description('per-tenant deployment files (infra/)');
  deploy
    .command('render-wrangler')
    .description(
      "print a tenant's Cloudflare Workers environment (a wrangler.toml section) from infra/tenants/<tenant>.json",
    )
    .requiredOption('--tenant <name>', 'tenant name, or a path to its settings file')
    .option('--write', 'append it to wrangler.toml instead of printing it')
    .action(async (o: { tenant: string; write?: boolean }) => {
      // Loaded on use: the deployment tooling is no part of the server's start-up.
      const { loadTenantDeployment } = await import('./tenant.ts');
      const { renderWranglerEnv, writeWranglerEnv } = await import('./cloudflare/render-wrangler.ts');
      const tenant = loadTenantDeployment(o.tenant);
      if (o.write) writeWranglerEnv(tenant);
      else process.stdout.write(renderWranglerEnv(tenant));
    });
}
