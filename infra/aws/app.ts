/**
 * The CDK app: one stack per tenant, from infra/tenants/<tenant>.json.
 *
 *   npx cdk synth -c tenant=acme          # offline: cdk.out/activesync-edge-acme.template.json
 *   npx cdk deploy -c tenant=acme         # see README "Deploy: AWS with CDK"
 *
 *   npx cdk deploy -c tenant=acme -c reservedConcurrency=50   # default DEFAULT_RESERVED_CONCURRENCY (tenant-stack.ts)
 *
 * The Lambda code is bundled first (infra/aws/bundle.ts) into cdk.out/bundle-<tenant>/.
 */
import { App } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { join } from 'node:path';
import { loadTenantDeployment } from '../tenant.ts';
import { bundleLambda } from './bundle.ts';
import { TenantStack } from './tenant-stack.ts';

const app = new App();
const name = app.node.tryGetContext('tenant') as string | undefined;
if (!name) throw new Error('name the tenant: npx cdk synth -c tenant=<name> (settings in infra/tenants/<name>.json)');
const tenant = loadTenantDeployment(name);
const reservedContext = app.node.tryGetContext('reservedConcurrency') as string | number | undefined;
const reservedConcurrency = reservedContext === undefined ? undefined : Number(reservedContext);
if (reservedConcurrency !== undefined && !(Number.isInteger(reservedConcurrency) && reservedConcurrency > 0))
  throw new Error(`reservedConcurrency must be a whole number above 0, not ${String(reservedContext)}`);
const bundleDir = join(app.outdir, `bundle-${tenant.tenant}`);
await bundleLambda(bundleDir);
new TenantStack(app, `activesync-edge-${tenant.tenant}`, {
  tenant,
  code: lambda.Code.fromAsset(bundleDir),
  ...(reservedConcurrency === undefined ? {} : { reservedConcurrency }),
  env: { region: tenant.aws.region, ...(tenant.aws.account ? { account: tenant.aws.account } : {}) },
  description: `Exchange ActiveSync (activesync-edge) for tenant ${tenant.tenant}`,
});
app.synth();
