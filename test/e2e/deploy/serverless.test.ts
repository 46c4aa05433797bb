/**
 * serverless.yml with osls: `osls package` runs offline (no AWS credentials, no network), and the CloudFormation
 * template it writes has what the deployment needs: runtime, architecture, the Function URL, the watcher's schedule,
 * the table with TTL, IAM scoped to that table and the one secret, log retention, and no secret value anywhere.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { validateTemplate } from '../../../infra/aws/validate.ts';

const ROOT = join(import.meta.dirname, '../../..');
const OSLS = join(ROOT, 'node_modules/.bin/osls');

interface Resource {
  Type: string;
  Properties: Record<string, unknown>;
  DeletionPolicy?: string;
}

/** The partial ARN of the stage's secret (its name is the `secret` param, activesync-edge/<stage>). */
const SECRET_ARN_PARTS = [
  'arn:',
  { Ref: 'AWS::Partition' },
  ':secretsmanager:',
  { Ref: 'AWS::Region' },
  ':',
  { Ref: 'AWS::AccountId' },
  ':secret:activesync-edge/acme',
];

let outDir: string;
let resources: Record<string, Resource>;
let templateText: string;

function ofType(type: string): [string, Resource][] {
  return Object.entries(resources).filter(([, r]) => r.Type === type);
}

beforeAll(async () => {
  outDir = mkdtempSync(join(tmpdir(), 'ase-osls-'));
  // No credentials, no telemetry: what a CI machine without AWS access has.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_')));
  await promisify(execFile)(OSLS, ['package', '--package', outDir, '--stage', 'acme'], {
    cwd: ROOT,
    env: { ...env, SLS_TELEMETRY_DISABLED: '1', SLS_NOTIFICATIONS_MODE: 'off', AWS_SDK_LOAD_CONFIG: '0' },
    timeout: 120_000,
  });
  templateText = readFileSync(join(outDir, 'cloudformation-template-update-stack.json'), 'utf8');
  resources = (JSON.parse(templateText) as { Resources: Record<string, Resource> }).Resources;
}, 150_000);

describe('npx osls package (serverless.yml)', () => {
  it('packages both functions from one esbuild bundle', () => {
    for (const name of ['api', 'watcher']) expect(statSync(join(outDir, `${name}.zip`)).size).toBeGreaterThan(100_000);
  });

  it('runs both functions on nodejs22.x, arm64, with 900 s for a long Ping', () => {
    const functions = Object.fromEntries(
      ofType('AWS::Lambda::Function').map(([, r]) => [r.Properties.Handler, r.Properties]),
    );
    expect(Object.keys(functions).sort()).toEqual(['src/runtimes/lambda.handler', 'src/runtimes/lambda.watch']);
    for (const f of Object.values(functions))
      expect(f).toMatchObject({ Runtime: 'nodejs22.x', Architectures: ['arm64'], Timeout: 900 });
    const env = (functions['src/runtimes/lambda.handler']!.Environment as { Variables: Record<string, unknown> })
      .Variables;
    expect(env).toMatchObject({ TENANT: 'acme', STATE_STORE: 'dynamodb', DYNAMODB_TABLE: { Ref: 'StateTable' } });
    // The functions read their secret when they start: the environment names it and holds none of its values.
    expect(env.IMAP_MASTER_PASSWORD).toBeUndefined();
    expect(JSON.stringify(env)).not.toContain('secretsmanager:activesync-edge');
    expect(env.SECRET_ARN).toEqual({ 'Fn::Join': ['', SECRET_ARN_PARTS] });
    expect(env.POLICY).toBe('{{resolve:ssm:/activesync-edge/acme/policy}}');
  });

  it('serves the API on a Function URL and starts the watcher every 13 minutes', () => {
    expect(ofType('AWS::Lambda::Url').map(([, r]) => r.Properties.AuthType)).toEqual(['NONE']);
    expect(ofType('AWS::Events::Rule').map(([, r]) => r.Properties.ScheduleExpression)).toEqual(['rate(13 minutes)']);
  });

  it('keeps logs 30 days', () => {
    const groups = ofType('AWS::Logs::LogGroup');
    expect(groups).toHaveLength(2);
    for (const [, g] of groups) expect(g.Properties.RetentionInDays).toBe(30);
  });

  it('creates the state table with TTL on `ttl`, kept when the stack goes', () => {
    const tables = ofType('AWS::DynamoDB::Table');
    expect(tables).toHaveLength(1);
    const [, table] = tables[0]!;
    expect(table.DeletionPolicy).toBe('Retain');
    expect(table.Properties).toMatchObject({
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true },
    });
  });

  it('allows the functions only item operations on that table, and reading their one secret', () => {
    const [, role] = ofType('AWS::IAM::Role')[0]!;
    const statements = (
      role.Properties.Policies as { PolicyDocument: { Statement: { Action: string[]; Resource: unknown[] }[] } }[]
    ).flatMap((p) => p.PolicyDocument.Statement);
    const dynamo = statements.filter((s) => s.Action.some((a) => a.startsWith('dynamodb:')));
    expect(dynamo).toHaveLength(1);
    expect(dynamo[0]!.Action.sort()).toEqual([
      'dynamodb:BatchWriteItem',
      'dynamodb:DeleteItem',
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:Query',
      'dynamodb:UpdateItem',
    ]);
    expect(dynamo[0]!.Resource).toEqual([{ 'Fn::GetAtt': ['StateTable', 'Arn'] }]);
    // The secret: read only, that one only.
    const secrets = statements.filter((s) => s.Action.some((a) => a.startsWith('secretsmanager:')));
    expect(secrets).toEqual([
      {
        Effect: 'Allow',
        Action: ['secretsmanager:GetSecretValue'],
        Resource: [{ 'Fn::Join': ['', [...SECRET_ARN_PARTS.slice(0, -1), ':secret:activesync-edge/acme-??????']] }],
      },
    ]);
    // Nothing else may touch DynamoDB or any other service but the function's logs.
    for (const s of statements)
      for (const a of s.Action)
        expect(a).toMatch(
          /^(dynamodb:(GetItem|PutItem|UpdateItem|DeleteItem|Query|BatchWriteItem)|logs:(CreateLogStream|CreateLogGroup|PutLogEvents|TagResource)|secretsmanager:GetSecretValue)$/,
        );
  });

  it('passes @aws/cloudformation-validate with no error', () => {
    const diagnostics = validateTemplate(templateText, 'serverless.json');
    expect(diagnostics.filter((d) => d.severity === 'ERROR')).toEqual([]);
    // Only osls's own Lambda versions lack an UpdateReplacePolicy (W3011), no other warning.
    expect(diagnostics.filter((d) => d.severity === 'WARN' && d.ruleId !== 'W3011')).toEqual([]);
  }, 60_000);
});
