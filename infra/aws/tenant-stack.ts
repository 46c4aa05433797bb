/**
 * One tenant's AWS stack (AWS CDK): the state table, the ActiveSync function behind a Function URL, the push watcher on
 * a schedule, alarms, and an optional custom domain (CloudFront in front of the Function URL).
 *
 * What it holds and why:
 * - DynamoDB table: pk/sk strings, on-demand, TTL on `ttl` (src/state/dynamodb/keys.ts), point-in-time recovery, kept
 *   when the stack is deleted (it holds the devices' sync state).
 * - Two functions from one bundle (infra/aws/bundle.ts): `lambda.handler` (Function URL, 900 s for long Pings) and
 *   `lambda.watch` (EventBridge every 13 minutes; each run watches for 14, so runs overlap by one).
 * - Least privilege: one role per function; item operations on this table only, log writes to its own log group only.
 * - Secrets: the functions read the tenant's Secrets Manager secret themselves when they start (SECRET_ARN,
 *   src/runtimes/secret-settings.ts), allowed GetSecretValue on that secret only. Neither the template nor the
 *   functions' environment holds a value: anyone with read access to Lambda's configuration sees the ARN alone.
 * - Custom domain: parameters CustomDomain and CertificateArn (ACM, us-east-1). When both are set, a CloudFront
 *   distribution serves that name. CloudFront waits at most 60 s for an answer (more only by quota increase), so a
 *   stack with a custom domain caps Ping heartbeats at 55 s; the Function URL alone allows 890 s. A CloudFront
 *   Function copies the viewer's address into VIEWER_ADDRESS_HEADER, replacing whatever the client sent, and the
 *   functions read it through CLIENT_IP_HEADER, so the per-address login throttle counts devices, not CloudFront.
 * - Only through CloudFront, with a custom domain: CloudFront adds ORIGIN_VERIFY_HEADER with a value generated per
 *   stack into its own secret (OriginSecret), and the function refuses requests without it (403), so a caller at the
 *   Function URL directly cannot bypass CloudFront nor pick its client address. Not origin access control (OAC with
 *   the URL's AuthType AWS_IAM): CloudFront's guide, "Restrict access to an AWS Lambda function URL origin", requires
 *   viewers of PUT and POST to send the body's SHA-256 in x-amz-content-sha256 (Lambda takes no unsigned payload),
 *   and no ActiveSync client does: every command is a POST.
 * - Reserved concurrency on the ActiveSync function (a prop): a flood of requests cannot take the account's whole
 *   concurrency, and a Ping holds one execution for its heartbeat.
 * - Log groups are kept when the stack is deleted (they are the record of who signed in and from where).
 */
import {
  Aws,
  CfnCondition,
  CfnOutput,
  CfnParameter,
  Duration,
  Fn,
  RemovalPolicy,
  Stack,
  Tags,
  Token,
  Validations,
  type StackProps,
} from 'aws-cdk-lib';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';
import { plainSettings, secretNameOf, type TenantDeployment } from '../tenant.ts';

/** The DynamoDB actions src/state/dynamodb/store.ts uses at run time (table creation is the template's job). */
export const STATE_TABLE_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:Query',
  'dynamodb:BatchWriteItem',
];

/** Heartbeat caps, seconds: a Function URL allows 900 s per request, CloudFront waits 60 s for an origin by default. */
const FUNCTION_URL_HEARTBEAT = '890';
const CLOUDFRONT_HEARTBEAT = '55';
/** CloudFront's managed policies: no caching; every viewer header but Host (a Function URL answers only its own). */
const CACHING_DISABLED = '4135ea2d-6df8-44a3-9df3-4b5a84be39ad';
const ALL_VIEWER_EXCEPT_HOST = 'b689b0a8-53d0-40ab-baf2-68738e2966ac';
/**
 * The header the distribution's viewer-request function sets to the viewer's IP address (no port, one entry). Not
 * X-Forwarded-For, where CloudFront appends to what the client sent and a later hop may append its own address, nor
 * CloudFront-Viewer-Address, which carries the port (every connection would count as a new address).
 */
export const VIEWER_ADDRESS_HEADER = 'X-Viewer-Address';
/**
 * The header CloudFront adds to every request it forwards to the Function URL (ORIGIN_VERIFY_HEADER). CloudFront
 * overwrites a header of that name a viewer sends, so only CloudFront can set it.
 */
export const ORIGIN_VERIFY_HEADER = 'X-Origin-Verify';
/** The IAM action the functions need on their secrets, and nothing else of Secrets Manager. */
export const SECRET_ACTIONS = ['secretsmanager:GetSecretValue'];

/**
 * The tenant's secret (operator-made, see README), by complete ARN when `aws.secretName` is one, else by name: its
 * ARN for SECRET_ARN and the ARN (with the `-??????` suffix Secrets Manager appends) for the role's policy.
 */
export function tenantSecret(scope: Construct, tenant: TenantDeployment): { arn: string; policyArn: string } {
  const name = secretNameOf(tenant);
  if (name.startsWith('arn:'))
    return { arn: secretsmanager.Secret.fromSecretCompleteArn(scope, 'TenantSecret', name).secretArn, policyArn: name };
  // A partial ARN (no suffix): GetSecretValue takes it; the policy matches whichever suffix the secret got.
  const { secretArn } = secretsmanager.Secret.fromSecretNameV2(scope, 'TenantSecret', name);
  return { arn: secretArn, policyArn: `${secretArn}-??????` };
}
/** Reserved concurrency of the ActiveSync function unless the stack is given another (README "AWS with CDK"). */
export const DEFAULT_RESERVED_CONCURRENCY = 100;

export interface TenantStackProps extends StackProps {
  tenant: TenantDeployment;
  /** The bundle (a directory with lambda.mjs, see bundle.ts), or inline code in tests. */
  code: lambda.Code;
  /**
   * Concurrent executions reserved for (and capping) the ActiveSync function; every device in a Ping holds one.
   * Default DEFAULT_RESERVED_CONCURRENCY; the account must keep 100 unreserved.
   */
  reservedConcurrency?: number;
}

export class TenantStack extends Stack {
  readonly table: dynamodb.Table;
  readonly api: lambda.Function;
  readonly watcher: lambda.Function;

  constructor(scope: Construct, id: string, props: TenantStackProps) {
    super(scope, id, props);
    const { tenant } = props;
    Tags.of(this).add('activesync-edge:tenant', tenant.tenant);

    const customDomain = new CfnParameter(this, 'CustomDomain', {
      type: 'String',
      default: tenant.hostname ?? '',
      description: 'Host name devices use (e.g. acme.sync.example.com); empty for the Function URL only',
      allowedPattern: '^$|^[a-z0-9.-]+$',
    });
    const certificateArn = new CfnParameter(this, 'CertificateArn', {
      type: 'String',
      default: '',
      description: 'ACM certificate in us-east-1 for CustomDomain; the custom domain is served only when both are set',
      allowedPattern: '^$|^arn:aws[a-z-]*:acm:us-east-1:\\d{12}:certificate/.+$',
    });
    const hasCustomDomain = new CfnCondition(this, 'HasCustomDomain', {
      expression: Fn.conditionAnd(
        Fn.conditionNot(Fn.conditionEquals(customDomain.valueAsString, '')),
        Fn.conditionNot(Fn.conditionEquals(certificateArn.valueAsString, '')),
      ),
    });

    this.table = stateTable(this);

    const secret = tenantSecret(this, tenant);
    // Made by CloudFormation with a random value, only with a custom domain; CloudFront reads it at deploy time.
    const originSecret = new secretsmanager.Secret(this, 'OriginSecret', {
      description: `activesync-edge ${tenant.tenant}: the ${ORIGIN_VERIFY_HEADER} value CloudFront sends the function`,
      generateSecretString: {
        secretStringTemplate: '{}',
        generateStringKey: 'ORIGIN_VERIFY_SECRET',
        passwordLength: 64,
        excludePunctuation: true,
      },
    });
    (originSecret.node.defaultChild as secretsmanager.CfnSecret).cfnOptions.condition = hasCustomDomain;
    const environment: Record<string, string> = {
      ...plainSettings(tenant),
      // Autodiscover names the custom domain only when the stack serves it; otherwise the origin asked (the URL's).
      PUBLIC_URL: Fn.conditionIf(
        hasCustomDomain.logicalId,
        Fn.join('', ['https://', customDomain.valueAsString]),
        Aws.NO_VALUE,
      ).toString(),
      STATE_STORE: 'dynamodb',
      DYNAMODB_TABLE: this.table.tableName,
      PING_MAX_HEARTBEAT: Fn.conditionIf(
        hasCustomDomain.logicalId,
        CLOUDFRONT_HEARTBEAT,
        FUNCTION_URL_HEARTBEAT,
      ).toString(),
      // Behind CloudFront the peer is a CloudFront server: the viewer's address is in the header the distribution's
      // function sets. The Function URL alone gives the device's address as sourceIp.
      CLIENT_IP_HEADER: Fn.conditionIf(hasCustomDomain.logicalId, VIEWER_ADDRESS_HEADER, Aws.NO_VALUE).toString(),
      // Where the secret settings are, not what they are: read by the function when it starts.
      SECRET_ARN: Fn.conditionIf(
        hasCustomDomain.logicalId,
        Fn.join(',', [secret.arn, originSecret.secretArn]),
        secret.arn,
      ).toString(),
      ORIGIN_VERIFY_HEADER: Fn.conditionIf(hasCustomDomain.logicalId, ORIGIN_VERIFY_HEADER, Aws.NO_VALUE).toString(),
    };

    const fn = (
      name: 'Api' | 'Watcher',
      handler: string,
      description: string,
      memorySize: number,
      reservedConcurrentExecutions?: number,
    ): lambda.Function => {
      // Kept on stack deletion: the logs are the record of sign-ins and failures, wanted after a tenant is removed.
      const logGroup = new logs.LogGroup(this, `${name}Logs`, {
        retention: retentionOf(tenant.aws.logRetentionDays),
        removalPolicy: RemovalPolicy.RETAIN,
      });
      // No managed policy: the function may write to its own log group and use the state table, nothing else.
      const role = new iam.Role(this, `${name}Role`, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
      role.addToPolicy(
        new iam.PolicyStatement({
          actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
          resources: [logGroup.logGroupArn],
        }),
      );
      role.addToPolicy(new iam.PolicyStatement({ actions: STATE_TABLE_ACTIONS, resources: [this.table.tableArn] }));
      role.addToPolicy(
        new iam.PolicyStatement({
          actions: SECRET_ACTIONS,
          resources: [
            secret.policyArn,
            Fn.conditionIf(hasCustomDomain.logicalId, originSecret.secretArn, Aws.NO_VALUE).toString(),
          ],
        }),
      );
      return new lambda.Function(this, name, {
        description,
        runtime: lambda.Runtime.NODEJS_22_X,
        architecture: lambda.Architecture.ARM_64,
        handler,
        code: props.code,
        memorySize,
        timeout: Duration.seconds(900),
        environment,
        role,
        logGroup,
        ...(reservedConcurrentExecutions === undefined ? {} : { reservedConcurrentExecutions }),
      });
    };
    this.api = fn(
      'Api',
      'lambda.handler',
      `Exchange ActiveSync for ${tenant.tenant} (Function URL)`,
      tenant.aws.memoryMb,
      props.reservedConcurrency ?? DEFAULT_RESERVED_CONCURRENCY,
    );
    this.watcher = fn(
      'Watcher',
      'lambda.watch',
      `Push watcher for ${tenant.tenant}: IMAP IDLE, one 14-minute run`,
      256,
    );

    // ActiveSync authenticates every request itself (Basic or Bearer): the URL is public. With a custom domain the
    // function takes only requests that carry CloudFront's ORIGIN_VERIFY_HEADER (the header comment says why not OAC).
    const url = this.api.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.NONE });

    new events.Rule(this, 'WatcherSchedule', {
      description: 'Starts a push watcher run every 13 minutes; runs last 14',
      schedule: events.Schedule.rate(Duration.minutes(13)),
      // A failed run is not retried: the next one starts within 13 minutes and catches up.
      targets: [new targets.LambdaFunction(this.watcher, { retryAttempts: 0 })],
    });

    // Sets VIEWER_ADDRESS_HEADER from the connection CloudFront accepted, replacing any value the client sent
    // (headers a viewer-request function sets go to the origin under the origin request policy, which passes all).
    const viewerAddress = new cloudfront.CfnFunction(this, 'ViewerAddressFunction', {
      name: `activesync-edge-${tenant.tenant}-viewer-address`,
      autoPublish: true,
      functionConfig: {
        comment: `Sets ${VIEWER_ADDRESS_HEADER} to the viewer's IP address`,
        runtime: 'cloudfront-js-2.0',
      },
      functionCode: [
        'async function handler(event) {',
        `  event.request.headers['${VIEWER_ADDRESS_HEADER.toLowerCase()}'] = { value: event.viewer.ip };`,
        '  return event.request;',
        '}',
      ].join('\n'),
    });
    viewerAddress.cfnOptions.condition = hasCustomDomain;

    const distribution = new cloudfront.CfnDistribution(this, 'CustomDomainDistribution', {
      distributionConfig: {
        enabled: true,
        comment: `activesync-edge ${tenant.tenant}`,
        // Only ever created with a domain (the condition); the If keeps validators from reading the empty default as
        // one.
        aliases: Token.asList(Fn.conditionIf(hasCustomDomain.logicalId, [customDomain.valueAsString], Aws.NO_VALUE)),
        httpVersion: 'http2',
        priceClass: 'PriceClass_100',
        viewerCertificate: {
          acmCertificateArn: certificateArn.valueAsString,
          sslSupportMethod: 'sni-only',
          minimumProtocolVersion: 'TLSv1.2_2021',
        },
        origins: [
          {
            id: 'function-url',
            // https://<id>.lambda-url.<region>.on.aws/ → its host name.
            domainName: Fn.select(2, Fn.split('/', url.url)),
            // A dynamic reference: CloudFormation resolves it when it deploys; the template holds no value.
            originCustomHeaders: [
              {
                headerName: ORIGIN_VERIFY_HEADER,
                headerValue: originSecret.secretValueFromJson('ORIGIN_VERIFY_SECRET').unsafeUnwrap(),
              },
            ],
            customOriginConfig: {
              originProtocolPolicy: 'https-only',
              originSslProtocols: ['TLSv1.2'],
              originReadTimeout: 60,
              originKeepaliveTimeout: 60,
            },
          },
        ],
        defaultCacheBehavior: {
          targetOriginId: 'function-url',
          viewerProtocolPolicy: 'https-only',
          allowedMethods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'PATCH', 'POST', 'DELETE'],
          cachedMethods: ['GET', 'HEAD'],
          cachePolicyId: CACHING_DISABLED,
          originRequestPolicyId: ALL_VIEWER_EXCEPT_HOST,
          compress: false,
          functionAssociations: [{ eventType: 'viewer-request', functionArn: viewerAddress.attrFunctionArn }],
        },
      },
    });
    distribution.cfnOptions.condition = hasCustomDomain;
    // The aliases' Fn::If on the distribution's own condition has a branch that never runs; it is there because
    // without it validators read the parameter's empty default as an alias (E3013).
    Validations.of(distribution).acknowledge({
      id: 'CloudFormation-Validate::W1028',
      reason: 'the If only hides the empty default from validators',
    });

    // Alarms, to a topic operators subscribe to.
    const { topic, alarm } = tenantAlarms(this, tenant);
    const fiveMinutes = { period: Duration.minutes(5), statistic: 'Sum' };
    alarm(
      'ApiErrorsAlarm',
      'ActiveSync function errors (crashes and timeouts, not protocol errors)',
      this.api.metricErrors(fiveMinutes),
      { threshold: 5 },
    );
    alarm(
      'ApiThrottlesAlarm',
      'ActiveSync requests throttled: raise the concurrency limit',
      this.api.metricThrottles(fiveMinutes),
      { threshold: 1 },
    );
    alarm(
      'WatcherErrorsAlarm',
      'A push watcher run failed',
      this.watcher.metricErrors({ period: Duration.minutes(15), statistic: 'Sum' }),
      { threshold: 1 },
    );
    alarm(
      'WatcherNotRunningAlarm',
      'No push watcher run started in 30 minutes: Ping will only see changes at heartbeat end',
      this.watcher.metricInvocations({ period: Duration.minutes(30), statistic: 'Sum' }),
      {
        threshold: 1,
        below: true,
        missing: cloudwatch.TreatMissingData.BREACHING,
      },
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

    new CfnOutput(this, 'FunctionUrl', { value: url.url, description: 'Point devices here (or at the custom domain)' });
    new CfnOutput(this, 'StateTableName', { value: this.table.tableName });
    new CfnOutput(this, 'AlarmTopicArn', { value: topic.topicArn });
    const domainOutput = new CfnOutput(this, 'CustomDomainTarget', {
      value: distribution.attrDomainName,
      description: 'CNAME the custom domain to this',
    });
    domainOutput.condition = hasCustomDomain;
  }
}

/** The tenant's state table (src/state/dynamodb/keys.ts), as every AWS stack of a tenant has it. */
export function stateTable(scope: Construct): dynamodb.Table {
  return new dynamodb.Table(scope, 'StateTable', {
    partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
    sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
    billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
    timeToLiveAttribute: 'ttl',
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
    encryption: dynamodb.TableEncryption.AWS_MANAGED,
    removalPolicy: RemovalPolicy.RETAIN,
  });
}

export function retentionOf(days: number): logs.RetentionDays {
  // The retention periods CloudWatch offers: the shortest that keeps logs at least `days`.
  const offered = Object.values(logs.RetentionDays)
    .filter((v): v is logs.RetentionDays => typeof v === 'number')
    .sort((a, b) => a - b);
  return offered.find((d) => d >= days) ?? logs.RetentionDays.INFINITE;
}

/** What adds one alarm of a tenant's stack: a threshold on a metric, to the stack's alarm topic. */
export type AddAlarm = (
  id: string,
  description: string,
  metric: cloudwatch.IMetric,
  o: { threshold: number; below?: boolean; missing?: cloudwatch.TreatMissingData },
) => void;

/**
 * The tenant's alarm topic (`Alarms`, mailed to `aws.alarmEmail` when set) and what adds alarms to it: shared by the
 * Lambda and the Fargate stacks, so that both alarm alike.
 */
export function tenantAlarms(scope: Construct, tenant: TenantDeployment): { topic: sns.Topic; alarm: AddAlarm } {
  const topic = new sns.Topic(scope, 'Alarms', { displayName: `activesync-edge ${tenant.tenant} alarms` });
  if (tenant.aws.alarmEmail)
    new sns.Subscription(scope, 'AlarmEmail', {
      topic,
      protocol: sns.SubscriptionProtocol.EMAIL,
      endpoint: tenant.aws.alarmEmail,
    });
  const alarm: AddAlarm = (id, description, metric, o) => {
    new cloudwatch.Alarm(scope, id, {
      alarmDescription: description,
      metric,
      threshold: o.threshold,
      evaluationPeriods: 1,
      comparisonOperator: o.below
        ? cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD
        : cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: o.missing ?? cloudwatch.TreatMissingData.NOT_BREACHING,
    }).addAlarmAction(new cloudwatchActions.SnsAction(topic));
  };
  return { topic, alarm };
}
