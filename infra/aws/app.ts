/**
 * The CDK app: one stack per tenant, from infra/tenants/<tenant>.json.
 *
 *   npx cdk synth -c tenant=acme          # offline: cdk.out/activesync-edge-acme.template.json
 *   npx cdk deploy -c tenant=acme         # see README "Deploy: AWS with CDK"
 *
 *   npx cdk deploy -c tenant=acme -c reservedConcurrency=50   # default DEFAULT_RESERVED_CONCURRENCY (tenant-stack.ts)
 *
 * The Lambda code is bundled first (infra/aws/bundle.ts) into cdk.out/bundle-<tenant>/.
 *
 * Containers instead (ECS Fargate, arm64, behind a load balancer; fargate-stack.ts):
 *
 *   npx cdk deploy -c tenant=acme -c stack=fargate --parameters CertificateArn=arn:aws:acm:eu-west-1:…
 *   npx cdk deploy -c tenant=acme -c stack=fargate -c image=123456789012.dkr.ecr.eu-west-1.amazonaws.com/ase:1.0 …
 *
 * Without `image`, the repository's Dockerfile is an image asset: `cdk deploy` builds it for linux/arm64 and pushes
 * it to the bootstrap repository (`cdk synth` only stages its files).
 */
import { App } from 'aws-cdk-lib';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import { join } from 'node:path';
import { loadTenantDeployment } from '../tenant.ts';
import { bundleLambda } from './bundle.ts';
import { FargateTenantStack } from './fargate-stack.ts';
import { TenantStack } from './tenant-stack.ts';

const app = new App();
const name = app.node.tryGetContext('tenant') as string | undefined;
if (!name) throw new Error('name the tenant: npx cdk synth -c tenant=<name> (settings in infra/tenants/<name>.json)');
const tenant = loadTenantDeployment(name);
const reservedContext = app.node.tryGetContext('reservedConcurrency') as string | number | undefined;
const reservedConcurrency = reservedContext === undefined ? undefined : Number(reservedContext);
if (reservedConcurrency !== undefined && !(Number.isInteger(reservedConcurrency) && reservedConcurrency > 0))
  throw new Error(`reservedConcurrency must be a whole number above 0, not ${String(reservedContext)}`);
const env = { region: tenant.aws.region, ...(tenant.aws.account ? { account: tenant.aws.account } : {}) };
const kind = (app.node.tryGetContext('stack') as string | undefined) ?? 'lambda';
if (kind === 'fargate') {
  const uri = app.node.tryGetContext('image') as string | undefined;
  new FargateTenantStack(app, `activesync-edge-${tenant.tenant}-fargate`, {
    tenant,
    image: uri
      ? ecs.ContainerImage.fromRegistry(uri)
      : ecs.ContainerImage.fromAsset(join(import.meta.dirname, '../..'), { platform: Platform.LINUX_ARM64 }),
    env,
    description: `Exchange ActiveSync (activesync-edge) on ECS Fargate for tenant ${tenant.tenant}`,
  });
} else if (kind === 'lambda') {
  const bundleDir = join(app.outdir, `bundle-${tenant.tenant}`);
  await bundleLambda(bundleDir);
  new TenantStack(app, `activesync-edge-${tenant.tenant}`, {
    tenant,
    code: lambda.Code.fromAsset(bundleDir),
    ...(reservedConcurrency === undefined ? {} : { reservedConcurrency }),
    env,
    description: `Exchange ActiveSync (activesync-edge) for tenant ${tenant.tenant}`,
  });
} else throw new Error(`stack must be lambda or fargate, not ${kind}`);
app.synth();
