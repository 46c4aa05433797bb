/**
 * One tenant's AWS stack for containers (AWS CDK): the Node runtime (the Dockerfile's image) on ECS Fargate, arm64,
 * behind an Application Load Balancer; for push-heavy tenants, where a held Ping costs a Lambda its wall time (README
 * "What an idle device costs").
 *
 * What it holds and why:
 * - A VPC over two zones: the load balancer in public subnets, the tasks in private ones (one NAT gateway for IMAP,
 *   SMTP, DAV, Secrets Manager and the image; DynamoDB through a free gateway endpoint).
 * - The state table, as the Lambda stack's (tenant-stack.ts stateTable), shared by two or more tasks: each task's
 *   IDLE watcher claims lease shards in it (src/push/idle-watcher.ts), so an account is watched by one task, and the
 *   others take a stopped task's shards over within a minute.
 * - The load balancer's idle timeout (IDLE_TIMEOUT_SECONDS) exceeds the longest Ping heartbeat the tasks allow
 *   (PING_MAX_HEARTBEAT), so a held Ping is not cut; the tasks keep idle connections open longer still
 *   (HTTP_KEEPALIVE_SECONDS), so the load balancer never reuses one the task has closed (a 502).
 * - HTTPS only (CertificateArn, an ACM certificate in the stack's region); the client address from X-Forwarded-For,
 *   whose last entry the load balancer appends (CLIENT_IP_HEADER); headers with invalid characters dropped.
 * - Health: the load balancer checks GET /Microsoft-Server-ActiveSync (the info page, 200; its health checks send
 *   GET only), the container an OPTIONS of that path (any answer below 500, as the Dockerfile's HEALTHCHECK).
 * - Auto scaling between MinTasks (at least 2) and MaxTasks on CPU and on memory (held Pings cost memory).
 * - Secrets: the tasks read the tenant's Secrets Manager secret at start-up (SECRET_ARN); the task role may read that
 *   secret, use the state table and nothing else. No secret value is in the template or the task definition.
 * - Logs to a log group kept on stack deletion; alarms to an SNS topic, as the Lambda stack's: errors (target 5xx),
 *   capacity (load balancer 5xx: no healthy target or too many connections), tasks missing (healthy tasks below the
 *   minimum: push watching stops with them), and DynamoDB throttling.
 * The image itself is built elsewhere (Dockerfile): the app (app.ts) passes it as an image asset that `cdk deploy`
 * builds and pushes, or as an image URI (`-c image=…`).
 */
import { Aws, CfnOutput, CfnParameter, Duration, RemovalPolicy, Stack, Tags, type StackProps } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { plainSettings, type TenantDeployment } from '../tenant.ts';
import {
  retentionOf,
  SECRET_ACTIONS,
  STATE_TABLE_ACTIONS,
  stateTable,
  tenantAlarms,
  tenantSecret,
} from './tenant-stack.ts';

/** The Node runtime's longest heartbeat (HEARTBEAT_CAPS.node), seconds. */
export const FARGATE_HEARTBEAT = 3540;
/** The load balancer's idle timeout: above the heartbeat, with time for the answer (ALB allows up to 4000 s). */
export const IDLE_TIMEOUT_SECONDS = 3600;
/** How long a task keeps an idle connection: longer than the load balancer does. */
export const HTTP_KEEPALIVE_SECONDS = IDLE_TIMEOUT_SECONDS + 60;
/** The port the container listens on (the Dockerfile's PORT). */
export const CONTAINER_PORT = 8080;
export const HEALTH_PATH = '/Microsoft-Server-ActiveSync';
/** The container's check: an ActiveSync OPTIONS answered at all (401 without credentials), as the Dockerfile's. */
export const CONTAINER_HEALTH_COMMAND = [
  'CMD',
  'node',
  '-e',
  `fetch('http://127.0.0.1:${CONTAINER_PORT}${HEALTH_PATH}',{method:'OPTIONS'}).then((r)=>process.exit(r.status<500?0:1),()=>process.exit(1))`,
];

export interface FargateTenantStackProps extends StackProps {
  tenant: TenantDeployment;
  /** The Node runtime's image (the repository's Dockerfile): an asset, or an image in a registry. */
  image: ecs.ContainerImage;
  /** Tasks always running (at least 2: two share the table and the watching). Default 2. */
  minTasks?: number;
  /** Default 8. */
  maxTasks?: number;
  /** Per task; defaults 512 CPU units (0.5 vCPU) and 1024 MiB. */
  cpu?: number;
  memoryMiB?: number;
}

export class FargateTenantStack extends Stack {
  readonly table: dynamodb.Table;
  readonly service: ecs.FargateService;
  readonly loadBalancer: elbv2.ApplicationLoadBalancer;

  constructor(scope: Construct, id: string, props: FargateTenantStackProps) {
    super(scope, id, props);
    const { tenant } = props;
    const minTasks = props.minTasks ?? 2;
    const maxTasks = props.maxTasks ?? 8;
    if (!(Number.isInteger(minTasks) && minTasks >= 2))
      throw new Error(`minTasks must be 2 or more (two tasks share the watching), not ${minTasks}`);
    if (!(Number.isInteger(maxTasks) && maxTasks >= minTasks))
      throw new Error(`maxTasks must be a whole number of at least minTasks (${minTasks}), not ${maxTasks}`);
    Tags.of(this).add('activesync-edge:tenant', tenant.tenant);

    const certificateArn = new CfnParameter(this, 'CertificateArn', {
      type: 'String',
      description: `ACM certificate (in this stack's region) for the host name devices use (${tenant.hostname ?? 'the load balancer'})`,
      allowedPattern: '^arn:aws[a-z-]*:acm:[a-z0-9-]+:\\d{12}:certificate/.+$',
    });

    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 1,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: 'tasks', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
      ],
    });
    vpc.addGatewayEndpoint('DynamoDb', { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB });

    this.table = stateTable(this);
    const secret = tenantSecret(this, tenant);

    const logGroup = new logs.LogGroup(this, 'TaskLogs', {
      retention: retentionOf(tenant.aws.logRetentionDays),
      removalPolicy: RemovalPolicy.RETAIN,
    });

    const cluster = new ecs.Cluster(this, 'Cluster', {
      vpc,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
    });

    // The task's own rights: the state table's item operations and its secret, nothing else. (The execution role,
    // which ECS uses to pull the image and write logs, is CDK's, limited to those.)
    const taskRole = new iam.Role(this, 'TaskRole', { assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com') });
    taskRole.addToPolicy(new iam.PolicyStatement({ actions: STATE_TABLE_ACTIONS, resources: [this.table.tableArn] }));
    taskRole.addToPolicy(new iam.PolicyStatement({ actions: SECRET_ACTIONS, resources: [secret.policyArn] }));

    const task = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu: props.cpu ?? 512,
      memoryLimitMiB: props.memoryMiB ?? 1024,
      runtimePlatform: {
        cpuArchitecture: ecs.CpuArchitecture.ARM64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
      taskRole,
    });
    task.addContainer('Server', {
      image: props.image,
      essential: true,
      portMappings: [{ containerPort: CONTAINER_PORT, protocol: ecs.Protocol.TCP }],
      logging: ecs.LogDrivers.awsLogs({ logGroup, streamPrefix: 'server' }),
      environment: {
        ...plainSettings(tenant),
        PORT: String(CONTAINER_PORT),
        STATE_STORE: 'dynamodb',
        DYNAMODB_TABLE: this.table.tableName,
        AWS_REGION: Aws.REGION,
        PING_MAX_HEARTBEAT: String(FARGATE_HEARTBEAT),
        HTTP_KEEPALIVE_SECONDS: String(HTTP_KEEPALIVE_SECONDS),
        // The load balancer appends the peer's address to X-Forwarded-For: its last entry is the device's.
        CLIENT_IP_HEADER: 'X-Forwarded-For',
        // Where the secret settings are, never what they are: the task reads it when it starts.
        SECRET_ARN: secret.arn,
      },
      healthCheck: {
        command: CONTAINER_HEALTH_COMMAND,
        interval: Duration.seconds(30),
        timeout: Duration.seconds(5),
        retries: 3,
        startPeriod: Duration.seconds(30),
      },
      // SIGTERM ends the server cleanly (its IMAP watchers, the state store); a held Ping is cut and the device
      // pings again through another task.
      stopTimeout: Duration.seconds(30),
      readonlyRootFilesystem: true,
    });

    this.loadBalancer = new elbv2.ApplicationLoadBalancer(this, 'LoadBalancer', {
      vpc,
      internetFacing: true,
      idleTimeout: Duration.seconds(IDLE_TIMEOUT_SECONDS),
      dropInvalidHeaderFields: true,
    });
    const listener = this.loadBalancer.addListener('Https', {
      port: 443,
      protocol: elbv2.ApplicationProtocol.HTTPS,
      certificates: [acm.Certificate.fromCertificateArn(this, 'Certificate', certificateArn.valueAsString)],
      sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
      open: true,
    });

    this.service = new ecs.FargateService(this, 'Service', {
      cluster,
      taskDefinition: task,
      desiredCount: minTasks,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { rollback: true },
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      assignPublicIp: false,
      healthCheckGracePeriod: Duration.seconds(60),
    });
    const targetGroup = listener.addTargets('Tasks', {
      port: CONTAINER_PORT,
      protocol: elbv2.ApplicationProtocol.HTTP,
      targets: [this.service],
      healthCheck: {
        path: HEALTH_PATH,
        healthyHttpCodes: '200',
        interval: Duration.seconds(30),
        timeout: Duration.seconds(5),
        healthyThresholdCount: 2,
        unhealthyThresholdCount: 3,
      },
      // A task being replaced gets this long to finish its requests; held Pings end and are sent again elsewhere.
      deregistrationDelay: Duration.seconds(30),
    });

    const scaling = this.service.autoScaleTaskCount({ minCapacity: minTasks, maxCapacity: maxTasks });
    scaling.scaleOnCpuUtilization('Cpu', { targetUtilizationPercent: 60 });
    scaling.scaleOnMemoryUtilization('Memory', { targetUtilizationPercent: 70 });

    // Alarms, to a topic operators subscribe to (the Lambda stack's, in a container's terms).
    const { topic, alarm } = tenantAlarms(this, tenant);
    const fiveMinutes = { period: Duration.minutes(5), statistic: 'Sum' };
    const metrics = this.loadBalancer.metrics;
    alarm(
      'ServerErrorsAlarm',
      'ActiveSync tasks answered 5xx (crashes and timeouts, not protocol errors)',
      metrics.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, fiveMinutes),
      { threshold: 5 },
    );
    alarm(
      'LoadBalancerErrorsAlarm',
      'The load balancer answered 5xx itself: no healthy task, or connections refused; raise MaxTasks',
      metrics.httpCodeElb(elbv2.HttpCodeElb.ELB_5XX_COUNT, fiveMinutes),
      { threshold: 5 },
    );
    alarm(
      'TasksMissingAlarm',
      `Fewer than ${minTasks} healthy tasks: requests and push watching run on fewer tasks than planned`,
      targetGroup.metrics.healthyHostCount({ period: Duration.minutes(5), statistic: 'Minimum' }),
      { threshold: minTasks, below: true, missing: cloudwatch.TreatMissingData.BREACHING },
    );
    alarm(
      'StateThrottlesAlarm',
      'DynamoDB throttled state requests',
      this.table.metricThrottledRequestsForOperations({
        operations: [
          dynamodb.Operation.GET_ITEM,
          dynamodb.Operation.PUT_ITEM,
          dynamodb.Operation.UPDATE_ITEM,
          dynamodb.Operation.QUERY,
        ],
        period: Duration.minutes(5),
      }),
      { threshold: 1 },
    );

    new CfnOutput(this, 'LoadBalancerDns', {
      value: this.loadBalancer.loadBalancerDnsName,
      description: 'CNAME (or alias) the host name devices use to this',
    });
    new CfnOutput(this, 'StateTableName', { value: this.table.tableName });
    new CfnOutput(this, 'AlarmTopicArn', { value: topic.topicArn });
  }
}
