/**
 * The per-tenant AWS CDK app (infra/aws/), synthesized offline in this process: the real Lambda bundle, the template's
 * resources and their scope, a snapshot of the whole template, and AWS's own template validator
 * (@aws/cloudformation-validate, bundled in aws-cdk-lib).
 */
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { bundleLambda } from '../../../infra/aws/bundle.ts';
import {
  DEFAULT_RESERVED_CONCURRENCY,
  ORIGIN_VERIFY_HEADER,
  SECRET_ACTIONS,
  STATE_TABLE_ACTIONS,
  TenantStack,
  VIEWER_ADDRESS_HEADER,
} from '../../../infra/aws/tenant-stack.ts';
import { validateTemplates, type TemplateDiagnostic } from '../../../infra/aws/validate.ts';
import {
  loadTenantDeployment,
  parseTenantDeployment,
  TenantSettingsError,
  type TenantDeployment,
} from '../../../infra/tenant.ts';

const ROOT = join(import.meta.dirname, '../../..');
/** The feature flags of cdk.json, so this synth matches `npx cdk synth`. */
const CDK_CONTEXT = (JSON.parse(readFileSync(join(ROOT, 'cdk.json'), 'utf8')) as { context: Record<string, unknown> })
  .context;

/** A second tenant unlike acme: sealed credentials instead of a master user, no host name, no alarm email. */
const GLOBEX = parseTenantDeployment({
  tenant: 'globex',
  imap: { host: 'mail.globex.example' },
  smtp: { host: 'mail.globex.example' },
  watcherLogin: 'sealed-credential',
});

/** The tenant's secret as SECRET_ARN names it: a partial ARN, from its name (`aws.secretName` or the default). */
const TENANT_SECRET_ARN = {
  'Fn::Join': [
    '',
    [
      'arn:',
      { Ref: 'AWS::Partition' },
      ':secretsmanager:eu-west-1:',
      { Ref: 'AWS::AccountId' },
      ':secret:activesync-edge/acme',
    ],
  ],
};

let bundleDir: string;
/** The synthesized stacks, by tenant: acme (infra/tenants/acme.json) and GLOBEX. */
const templates = new Map<string, Template>();

function synth(tenant: TenantDeployment, reservedConcurrency?: number): Template {
  const app = new App({
    outdir: mkdtempSync(join(tmpdir(), 'ase-cdk-')),
    analyticsReporting: false,
    context: CDK_CONTEXT,
  });
  const stack = new TenantStack(app, `activesync-edge-${tenant.tenant}`, {
    tenant,
    code: lambda.Code.fromAsset(bundleDir),
    env: { region: tenant.aws.region },
    ...(reservedConcurrency === undefined ? {} : { reservedConcurrency }),
  });
  return Template.fromStack(stack);
}

function template(tenant: string): Template {
  return templates.get(tenant)!;
}

/** The template without what changes with every source edit: the bundle's content hash. */
function stable(template: object): unknown {
  return JSON.parse(JSON.stringify(template).replace(/[0-9a-f]{64}\.zip/g, '<bundle-hash>.zip'));
}

beforeAll(async () => {
  bundleDir = mkdtempSync(join(tmpdir(), 'ase-lambda-bundle-'));
  await bundleLambda(bundleDir);
  for (const tenant of [loadTenantDeployment('acme'), GLOBEX]) templates.set(tenant.tenant, synth(tenant));
}, 90_000);

describe('infra/tenants settings', () => {
  it('reads a tenant file, and names the bad field of a broken one', () => {
    expect(loadTenantDeployment('acme')).toMatchObject({
      tenant: 'acme',
      hostname: 'acme.sync.example.com',
      aws: { region: 'eu-west-1' },
    });
    expect(() => parseTenantDeployment({ tenant: 'Bad Name', imap: { host: 'x' }, smtp: { host: 'x' } })).toThrow(
      /tenant must be/,
    );
    expect(() => loadTenantDeployment('no-such-tenant')).toThrow(TenantSettingsError);
  });
});

describe('the tenant stack (aws-cdk-lib, synthesized offline)', () => {
  it('bundles the Lambda code into one ES module', () => {
    expect(statSync(join(bundleDir, 'lambda.mjs')).size).toBeGreaterThan(100_000);
  });

  it('has the state table with TTL on `ttl`, on demand, kept on stack deletion', () => {
    const t = template('acme');
    t.resourceCountIs('AWS::DynamoDB::Table', 1);
    t.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      Properties: {
        KeySchema: [
          { AttributeName: 'pk', KeyType: 'HASH' },
          { AttributeName: 'sk', KeyType: 'RANGE' },
        ],
        BillingMode: 'PAY_PER_REQUEST',
        TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true },
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      },
    });
  });

  it('has both functions on nodejs22.x arm64 with the DynamoDB settings and the secret by ARN, never a value', () => {
    const t = template('acme');
    const functions = t.findResources('AWS::Lambda::Function');
    expect(
      Object.values(functions)
        .map((f) => (f as { Properties: { Handler: string } }).Properties.Handler)
        .sort(),
    ).toEqual(['lambda.handler', 'lambda.watch']);
    for (const f of Object.values(functions) as { Properties: Record<string, unknown> }[]) {
      expect(f.Properties).toMatchObject({ Runtime: 'nodejs22.x', Architectures: ['arm64'], Timeout: 900 });
      const env = (f.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
      expect(env).toMatchObject({
        TENANT: 'acme',
        STATE_STORE: 'dynamodb',
        IMAP_HOST: 'imap.acme.example',
        IMAP_PORT: '993',
        MAIL_DOMAIN: 'acme.example',
      });
      expect(env.PUBLIC_URL).toEqual({
        'Fn::If': [
          'HasCustomDomain',
          { 'Fn::Join': ['', ['https://', { Ref: 'CustomDomain' }]] },
          { Ref: 'AWS::NoValue' },
        ],
      });
      expect(env.DYNAMODB_TABLE).toEqual({ Ref: expect.stringMatching(/^StateTable/) });
      // The functions read the secret when they start: the environment names it, holds none of its values, and no
      // dynamic reference CloudFormation would resolve into it.
      for (const key of ['IMAP_MASTER_USER', 'IMAP_MASTER_PASSWORD', 'CREDENTIAL_KEY', 'ADMIN_TOKEN'])
        expect(env[key]).toBeUndefined();
      expect(JSON.stringify(env)).not.toContain('{{resolve:');
      expect(env.SECRET_ARN).toEqual({
        'Fn::If': [
          'HasCustomDomain',
          { 'Fn::Join': [',', [TENANT_SECRET_ARN, { Ref: expect.stringMatching(/^OriginSecret/) }]] },
          TENANT_SECRET_ARN,
        ],
      });
      // The heartbeat cap follows the custom domain: CloudFront waits 60 s, a Function URL 900 s.
      expect(env.PING_MAX_HEARTBEAT).toEqual({ 'Fn::If': ['HasCustomDomain', '55', '890'] });
    }
  });

  it('gives each function only the item operations on its table and writes to its own log group', () => {
    const t = template('acme');
    const policies = Object.values(t.findResources('AWS::IAM::Policy')) as {
      Properties: { PolicyDocument: { Statement: { Action: string | string[]; Resource: unknown }[] } };
    }[];
    expect(policies).toHaveLength(2);
    for (const policy of policies) {
      const statements = policy.Properties.PolicyDocument.Statement;
      const actions = statements.flatMap((s) => [s.Action].flat());
      expect(actions.filter((a) => a.startsWith('dynamodb:')).sort()).toEqual([...STATE_TABLE_ACTIONS].sort());
      expect(actions.filter((a) => !a.startsWith('dynamodb:')).sort()).toEqual([
        'logs:CreateLogStream',
        'logs:PutLogEvents',
        ...SECRET_ACTIONS,
      ]);
      // GetSecretValue on the tenant's secret (any suffix Secrets Manager gave it) and, with a custom domain, the
      // origin secret: nothing else.
      const secrets = statements.find((s) => [s.Action].flat().includes('secretsmanager:GetSecretValue'))!;
      expect(new Set(secrets.Resource as unknown[])).toEqual(
        new Set([
          {
            'Fn::Join': [
              '',
              [...(TENANT_SECRET_ARN['Fn::Join'][1] as unknown[]).slice(0, -1), ':secret:activesync-edge/acme-??????'],
            ],
          },
          { 'Fn::If': ['HasCustomDomain', { Ref: expect.stringMatching(/^OriginSecret/) }, { Ref: 'AWS::NoValue' }] },
        ]),
      );
      for (const s of statements) {
        // No wildcard: every statement names one resource of this stack.
        expect(JSON.stringify(s.Resource)).not.toContain('"*"');
        if ([s.Action].flat().some((a) => a.startsWith('dynamodb:')))
          expect(s.Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^StateTable/), 'Arn'] });
      }
    }
    // No managed policy (AWSLambdaBasicExecutionRole allows logs on every group).
    for (const role of Object.values(t.findResources('AWS::IAM::Role')) as { Properties: Record<string, unknown> }[])
      expect(role.Properties.ManagedPolicyArns).toBeUndefined();
  });

  it('has the Function URL, the 13-minute schedule, log retention, alarms, and the custom-domain parameter', () => {
    const t = template('acme');
    t.hasResourceProperties('AWS::Lambda::Url', { AuthType: 'NONE' });
    t.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(13 minutes)',
      Targets: [Match.objectLike({ RetryPolicy: { MaximumRetryAttempts: 0 } })],
    });
    t.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
    t.resourceCountIs('AWS::CloudWatch::Alarm', 5);
    t.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@acme.example' });
    t.hasParameter('CustomDomain', { Type: 'String', Default: 'acme.sync.example.com' });
    t.hasParameter('CertificateArn', { Type: 'String', Default: '' });
    t.hasResource('AWS::CloudFront::Distribution', { Condition: 'HasCustomDomain' });
    t.hasOutput('FunctionUrl', {});
  });

  it('behind CloudFront, reads the client address from a header the distribution sets and the client cannot', async () => {
    const t = template('acme');
    for (const f of Object.values(t.findResources('AWS::Lambda::Function')) as {
      Properties: { Environment: { Variables: Record<string, unknown> } };
    }[])
      expect(f.Properties.Environment.Variables.CLIENT_IP_HEADER).toEqual({
        'Fn::If': ['HasCustomDomain', VIEWER_ADDRESS_HEADER, { Ref: 'AWS::NoValue' }],
      });
    const functions = t.findResources('AWS::CloudFront::Function', { Condition: 'HasCustomDomain' });
    expect(Object.keys(functions)).toHaveLength(1);
    const [functionId, cfFunction] = Object.entries(functions)[0] as [
      string,
      { Properties: { FunctionCode: string; FunctionConfig: { Runtime: string } } },
    ];
    expect(cfFunction.Properties.FunctionConfig.Runtime).toBe('cloudfront-js-2.0');
    t.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        DefaultCacheBehavior: Match.objectLike({
          FunctionAssociations: [
            { EventType: 'viewer-request', FunctionARN: { 'Fn::GetAtt': [functionId, 'FunctionARN'] } },
          ],
        }),
      }),
    });
    // Run the function's code on a viewer request that forges the header: the viewer's address replaces it.
    const handler = new Function(`${cfFunction.Properties.FunctionCode}\nreturn handler;`)() as (
      event: unknown,
    ) => Promise<{ headers: Record<string, { value: string }> }>;
    const request = await handler({
      viewer: { ip: '198.51.100.7' },
      request: { headers: { [VIEWER_ADDRESS_HEADER.toLowerCase()]: { value: '203.0.113.1' } } },
    });
    expect(request.headers[VIEWER_ADDRESS_HEADER.toLowerCase()]).toEqual({ value: '198.51.100.7' });
  });

  it('with a custom domain, CloudFront sends a generated secret in a header the functions require', () => {
    const t = template('acme');
    const generated = t.findResources('AWS::SecretsManager::Secret', { Condition: 'HasCustomDomain' });
    expect(Object.values(generated)).toHaveLength(1);
    const [secretId, secret] = Object.entries(generated)[0] as [
      string,
      { Properties: { GenerateSecretString: Record<string, unknown>; SecretString?: unknown } },
    ];
    // CloudFormation makes the value: none in the template.
    expect(secret.Properties.SecretString).toBeUndefined();
    expect(secret.Properties.GenerateSecretString).toMatchObject({
      GenerateStringKey: 'ORIGIN_VERIFY_SECRET',
      PasswordLength: 64,
    });
    t.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        Origins: [
          Match.objectLike({
            OriginCustomHeaders: [
              {
                HeaderName: ORIGIN_VERIFY_HEADER,
                HeaderValue: {
                  'Fn::Join': [
                    '',
                    ['{{resolve:secretsmanager:', { Ref: secretId }, ':SecretString:ORIGIN_VERIFY_SECRET::}}'],
                  ],
                },
              },
            ],
          }),
        ],
      }),
    });
    for (const f of Object.values(t.findResources('AWS::Lambda::Function')) as {
      Properties: { Environment: { Variables: Record<string, unknown> } };
    }[])
      expect(f.Properties.Environment.Variables.ORIGIN_VERIFY_HEADER).toEqual({
        'Fn::If': ['HasCustomDomain', ORIGIN_VERIFY_HEADER, { Ref: 'AWS::NoValue' }],
      });
  });

  it('reserves concurrency for the ActiveSync function (a stack prop), not for the watcher', () => {
    const byHandler = (t: Template): Record<string, Record<string, unknown>> =>
      Object.fromEntries(
        (Object.values(t.findResources('AWS::Lambda::Function')) as { Properties: Record<string, unknown> }[]).map(
          (f) => [f.Properties.Handler as string, f.Properties],
        ),
      );
    const defaults = byHandler(template('acme'));
    expect(defaults['lambda.handler']!.ReservedConcurrentExecutions).toBe(DEFAULT_RESERVED_CONCURRENCY);
    expect(defaults['lambda.watch']!.ReservedConcurrentExecutions).toBeUndefined();
    expect(byHandler(synth(GLOBEX, 20))['lambda.handler']!.ReservedConcurrentExecutions).toBe(20);
  });

  it('keeps both log groups when the stack is deleted', () => {
    const t = template('acme');
    t.resourceCountIs('AWS::Logs::LogGroup', 2);
    t.allResources('AWS::Logs::LogGroup', { DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
  });

  it('names the secret of a tenant with sealed credentials instead of a master user', () => {
    const t = template('globex');
    const api = Object.values(t.findResources('AWS::Lambda::Function'))[0] as {
      Properties: { Environment: { Variables: Record<string, unknown> } };
    };
    const env = api.Properties.Environment.Variables;
    expect(env.CREDENTIAL_KEY).toBeUndefined();
    expect(JSON.stringify(env.SECRET_ARN)).toContain(':secret:activesync-edge/globex');
    expect(env.IMAP_MASTER_USER).toBeUndefined();
    t.resourceCountIs('AWS::SNS::Subscription', 0);
    t.hasParameter('CustomDomain', { Default: '' });
  });

  it('matches the snapshots of both tenants', () => {
    expect(stable(template('acme').toJSON())).toMatchSnapshot('acme');
    expect(stable(template('globex').toJSON())).toMatchSnapshot('globex');
  });

  it('passes @aws/cloudformation-validate with no error, and no warning but two known ones', () => {
    const results = validateTemplates([...templates].map(([name, t]) => ({ name, template: t.toJSON() })));
    // W3005: CDK's own DependsOn of a function on its role's policy. W1028: the distribution's `Fn::If` on its own
    // condition, there because without it the validator reads the parameter's empty default as an alias (E3013).
    const known = ['W3005', 'W1028'];
    const significant = (ds: TemplateDiagnostic[]): TemplateDiagnostic[] =>
      ds.filter((d) => d.severity === 'ERROR' || (d.severity === 'WARN' && !known.includes(d.ruleId)));
    expect(Object.fromEntries([...results].map(([name, ds]) => [name, significant(ds)]))).toEqual({
      acme: [],
      globex: [],
    });
    // The validator did look: it has notes (INFO) about these templates.
    expect(results.get('acme')!.length).toBeGreaterThan(0);
  }, 60_000);
});
