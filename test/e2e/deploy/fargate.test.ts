/**
 * The per-tenant container stack (infra/aws/fargate-stack.ts, issue 19 item 5), synthesized offline in this process
 * and checked with AWS's own template validator (@aws/cloudformation-validate, bundled in aws-cdk-lib); and the two
 * things of the Node runtime it relies on, against a running server: the keep-alive it announces outlasts the load
 * balancer's idle timeout, and the container's health check (an OPTIONS) passes.
 */
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import {
  CONTAINER_HEALTH_COMMAND,
  CONTAINER_PORT,
  FARGATE_HEARTBEAT,
  FargateTenantStack,
  HEALTH_PATH,
  HTTP_KEEPALIVE_SECONDS,
  IDLE_TIMEOUT_SECONDS,
} from '../../../infra/aws/fargate-stack.ts';
import { SECRET_ACTIONS, STATE_TABLE_ACTIONS } from '../../../infra/aws/tenant-stack.ts';
import { validateTemplate } from '../../../infra/aws/validate.ts';
import { loadTenantDeployment, type TenantDeployment } from '../../../infra/tenant.ts';
import { HEARTBEAT_CAPS } from '../../../src/push/wait.ts';
import { startNodeServer, stopNodeServer } from '../../services/node-server.ts';
import { freePort } from '../../services/process.ts';

const services = inject('services');
const ROOT = join(import.meta.dirname, '../../..');
const CDK_CONTEXT = (JSON.parse(readFileSync(join(ROOT, 'cdk.json'), 'utf8')) as { context: Record<string, unknown> })
  .context;
const IMAGE = '123456789012.dkr.ecr.eu-west-1.amazonaws.com/activesync-edge:test';

function synth(
  tenant: TenantDeployment,
  o: { image?: ecs.ContainerImage; minTasks?: number } = {},
): { template: Template; app: App; assembly: string } {
  const outdir = mkdtempSync(join(tmpdir(), 'ase-fargate-'));
  const app = new App({ outdir, analyticsReporting: false, context: CDK_CONTEXT });
  const stack = new FargateTenantStack(app, `activesync-edge-${tenant.tenant}-fargate`, {
    tenant,
    image: o.image ?? ecs.ContainerImage.fromRegistry(IMAGE),
    env: { region: tenant.aws.region },
    ...(o.minTasks === undefined ? {} : { minTasks: o.minTasks }),
  });
  const template = Template.fromStack(stack);
  return { template, app, assembly: outdir };
}

type Resources = Record<string, { Properties: Record<string, unknown> }>;
let t: Template;

beforeAll(() => {
  t = synth(loadTenantDeployment('acme')).template;
});

describe('the Fargate tenant stack (aws-cdk-lib, synthesized offline)', () => {
  it('runs the image on Fargate, arm64, with the DynamoDB settings and the secret by ARN, never a value', () => {
    t.hasResourceProperties('AWS::ECS::TaskDefinition', {
      RequiresCompatibilities: ['FARGATE'],
      RuntimePlatform: { CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' },
      NetworkMode: 'awsvpc',
    });
    const [task] = Object.values(t.findResources('AWS::ECS::TaskDefinition') as Resources);
    const [container] = task!.Properties.ContainerDefinitions as {
      Image: unknown;
      Environment: { Name: string; Value: unknown }[];
      Secrets?: unknown;
      HealthCheck: { Command: string[] };
      PortMappings: { ContainerPort: number }[];
      LogConfiguration: { LogDriver: string };
    }[];
    expect(container!.Image).toBe(IMAGE);
    const env = Object.fromEntries(container!.Environment.map((e) => [e.Name, e.Value]));
    expect(env).toMatchObject({
      TENANT: 'acme',
      IMAP_HOST: 'imap.acme.example',
      STATE_STORE: 'dynamodb',
      PING_MAX_HEARTBEAT: String(FARGATE_HEARTBEAT),
      CLIENT_IP_HEADER: 'X-Forwarded-For',
      HTTP_KEEPALIVE_SECONDS: String(HTTP_KEEPALIVE_SECONDS),
    });
    expect(env.DYNAMODB_TABLE).toEqual({ Ref: expect.stringMatching(/^StateTable/) });
    expect(JSON.stringify(env.SECRET_ARN)).toContain(':secret:activesync-edge/acme');
    for (const key of ['IMAP_MASTER_USER', 'IMAP_MASTER_PASSWORD', 'CREDENTIAL_KEY', 'ADMIN_TOKEN'])
      expect(env[key]).toBeUndefined();
    // Not even ECS's own secret injection: the task reads the secret itself, so no value is in its environment.
    expect(container!.Secrets).toBeUndefined();
    expect(JSON.stringify(t.toJSON())).not.toContain('{{resolve:');
    expect(container!.PortMappings[0]!.ContainerPort).toBe(CONTAINER_PORT);
    expect(container!.LogConfiguration.LogDriver).toBe('awslogs');
    expect(container!.HealthCheck.Command).toEqual(CONTAINER_HEALTH_COMMAND);
    expect(container!.HealthCheck.Command.join(' ')).toContain("method:'OPTIONS'");
  });

  it('keeps a held Ping: the load balancer idles longer than the longest heartbeat, the tasks longer still', () => {
    expect(FARGATE_HEARTBEAT).toBe(HEARTBEAT_CAPS.node);
    expect(IDLE_TIMEOUT_SECONDS).toBeGreaterThan(FARGATE_HEARTBEAT);
    expect(IDLE_TIMEOUT_SECONDS).toBeLessThanOrEqual(4000);
    expect(HTTP_KEEPALIVE_SECONDS).toBeGreaterThan(IDLE_TIMEOUT_SECONDS);
    t.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Scheme: 'internet-facing',
      LoadBalancerAttributes: Match.arrayWith([
        { Key: 'idle_timeout.timeout_seconds', Value: String(IDLE_TIMEOUT_SECONDS) },
        { Key: 'routing.http.drop_invalid_header_fields.enabled', Value: 'true' },
      ]),
    });
    t.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Port: 443,
      Protocol: 'HTTPS',
      Certificates: [{ CertificateArn: { Ref: 'CertificateArn' } }],
    });
    t.resourceCountIs('AWS::ElasticLoadBalancingV2::Listener', 1);
    t.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      TargetType: 'ip',
      Port: CONTAINER_PORT,
      HealthCheckPath: HEALTH_PATH,
      Matcher: { HttpCode: '200' },
    });
  });

  it('runs two or more tasks in private subnets, scaled on CPU and memory', () => {
    t.hasResourceProperties('AWS::ECS::Service', {
      LaunchType: 'FARGATE',
      DesiredCount: 2,
      NetworkConfiguration: { AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: 'DISABLED' }) },
      DeploymentConfiguration: Match.objectLike({ MinimumHealthyPercent: 100 }),
    });
    t.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', { MinCapacity: 2, MaxCapacity: 8 });
    const metrics = Object.values(t.findResources('AWS::ApplicationAutoScaling::ScalingPolicy') as Resources).map(
      (p) =>
        (
          p.Properties.TargetTrackingScalingPolicyConfiguration as {
            PredefinedMetricSpecification: { PredefinedMetricType: string };
          }
        ).PredefinedMetricSpecification.PredefinedMetricType,
    );
    expect(metrics.sort()).toEqual(['ECSServiceAverageCPUUtilization', 'ECSServiceAverageMemoryUtilization']);
    expect(() => synth(loadTenantDeployment('acme'), { minTasks: 1 })).toThrow(/minTasks must be 2 or more/);
    t.hasResourceProperties('AWS::EC2::VPCEndpoint', { VpcEndpointType: 'Gateway' });
  });

  it('gives the tasks the state table and their secret, nothing else', () => {
    const roles = t.findResources('AWS::IAM::Role', {
      Properties: {
        AssumeRolePolicyDocument: Match.objectLike({
          Statement: [Match.objectLike({ Principal: { Service: 'ecs-tasks.amazonaws.com' } })],
        }),
      },
    });
    const [taskDefinition] = Object.values(t.findResources('AWS::ECS::TaskDefinition') as Resources);
    const taskRoleId = (taskDefinition!.Properties.TaskRoleArn as { 'Fn::GetAtt': [string] })['Fn::GetAtt'][0];
    expect(Object.keys(roles)).toContain(taskRoleId);
    const policies = Object.values(
      t.findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: taskRoleId }] } }) as Resources,
    );
    const statements = policies.flatMap(
      (p) =>
        (p.Properties.PolicyDocument as { Statement: { Action: string | string[]; Resource: unknown }[] }).Statement,
    );
    expect(statements.flatMap((s) => [s.Action].flat()).sort()).toEqual(
      [...STATE_TABLE_ACTIONS, ...SECRET_ACTIONS].sort(),
    );
    for (const s of statements) {
      if ([s.Action].flat()[0]!.startsWith('dynamodb:'))
        expect(s.Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^StateTable/), 'Arn'] });
      else expect(JSON.stringify(s.Resource)).toContain(':secret:activesync-edge/acme-??????');
    }
  });

  it('keeps the table and the logs on stack deletion, and has the alarms of the Lambda stack in container terms', () => {
    t.hasResource('AWS::DynamoDB::Table', {
      DeletionPolicy: 'Retain',
      Properties: Match.objectLike({ TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true } }),
    });
    t.allResources('AWS::Logs::LogGroup', { DeletionPolicy: 'Retain' });
    t.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
    const alarms = Object.values(t.findResources('AWS::CloudWatch::Alarm') as Resources).map(
      // DynamoDB's throttles are a sum over operations: a metric math expression.
      (a) => a.Properties.MetricName ?? (JSON.stringify(a).includes('"ThrottledRequests"') ? 'ThrottledRequests' : ''),
    );
    expect(alarms.sort()).toEqual([
      'HTTPCode_ELB_5XX_Count',
      'HTTPCode_Target_5XX_Count',
      'HealthyHostCount',
      'ThrottledRequests',
    ]);
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'HealthyHostCount',
      Threshold: 2,
      ComparisonOperator: 'LessThanThreshold',
      TreatMissingData: 'breaching',
    });
    t.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@acme.example' });
    t.hasOutput('LoadBalancerDns', {});
  });

  it('takes the Dockerfile as an image asset for linux/arm64, built by cdk deploy, not by synth', () => {
    const { app, template } = synth(loadTenantDeployment('acme'), {
      image: ecs.ContainerImage.fromAsset(ROOT, { platform: Platform.LINUX_ARM64 }),
    });
    const assembly = app.synth();
    const manifest = JSON.parse(
      readFileSync(join(assembly.directory, 'activesync-edge-acme-fargate.assets.json'), 'utf8'),
    ) as { dockerImages: Record<string, { source: { directory: string; platform?: string } }> };
    const images = Object.values(manifest.dockerImages);
    expect(images).toHaveLength(1);
    expect(images[0]!.source.platform).toBe('linux/arm64');
    // Staged without node_modules (.dockerignore), the Dockerfile in it.
    const staged = join(assembly.directory, images[0]!.source.directory);
    expect(readFileSync(join(staged, 'Dockerfile'), 'utf8')).toContain('FROM node');
    expect(() => readFileSync(join(staged, 'node_modules/.package-lock.json'))).toThrow();
    const [task] = Object.values(template.findResources('AWS::ECS::TaskDefinition') as Resources);
    expect(JSON.stringify((task!.Properties.ContainerDefinitions as { Image: unknown }[])[0]!.Image)).toContain(
      'container-assets',
    );
  }, 60_000);

  it('passes @aws/cloudformation-validate with no error, and no warning but a known one', () => {
    const diagnostics = validateTemplate(t.toJSON(), 'fargate.json');
    // W3005: CDK's own DependsOn of the service on its listener rule, as of the Lambda stack's functions on their
    // roles' policies.
    expect(
      diagnostics.filter((d) => d.severity === 'ERROR' || (d.severity === 'WARN' && d.ruleId !== 'W3005')),
    ).toEqual([]);
    expect(diagnostics.filter((d) => d.ruleId === 'W3005').map((d) => d.where)).toEqual([
      expect.stringMatching(/^Service/),
    ]);
  }, 60_000);
});

describe('the Node runtime as the stack runs it', () => {
  it('keeps idle connections for HTTP_KEEPALIVE_SECONDS, and passes the container health check (OPTIONS)', async () => {
    const port = await freePort();
    const server = await startNodeServer({
      PORT: String(port),
      HOST: '127.0.0.1',
      IMAP_HOST: services.imap.host,
      IMAP_PORT: String(services.imap.port),
      IMAP_SECURE: 'false',
      ALLOW_PLAINTEXT_BACKENDS: 'true',
      STATE_DIR: mkdtempSync(join(tmpdir(), 'ase-fargate-node-')),
      HTTP_KEEPALIVE_SECONDS: String(HTTP_KEEPALIVE_SECONDS),
    });
    try {
      const res = await fetch(`http://127.0.0.1:${port}${HEALTH_PATH}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('keep-alive')).toBe(`timeout=${HTTP_KEEPALIVE_SECONDS}`);
      // The task definition's health check command, run as ECS runs it (without the CMD marker), on this port.
      const [, command, ...args] = CONTAINER_HEALTH_COMMAND.map((part) =>
        part.replace(`:${CONTAINER_PORT}/`, `:${port}/`),
      );
      await expect(promisify(execFile)(command!, args, { timeout: 20_000 })).resolves.toBeDefined();
    } finally {
      await stopNodeServer(server);
    }
  }, 60_000);
});
