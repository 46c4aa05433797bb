/**
 * Offline CloudFormation template validation with AWS's WASM validator, `@aws/cloudformation-validate`, the one that
 * ships inside aws-cdk-lib (the npm package of that name at `latest` is an older beta with another API). It reports
 * cfn-lint rule ids: unknown properties, wrong types, bad Refs and GetAtts, insecure or wasteful settings.
 *
 *   npx tsx infra/aws/validate.ts cdk.out/activesync-edge-acme.template.json .serverless/cloudformation-template-update-stack.json
 */
import { createRequire } from 'node:module';

export interface TemplateDiagnostic {
  severity: string;
  ruleId: string;
  message: string;
  /** The resource (logical id) or other entity it is about. */
  where: string;
}

interface ValidatorModule {
  CompositeEngine: new () => { validateTemplate(template: unknown): { diagnostics: RawDiagnostic[] }; free(): void };
  TemplateContent: new (content: string, name?: string) => unknown;
}

interface RawDiagnostic {
  severity: string;
  ruleId: string;
  message: string;
  entity?: { logicalId?: string; name?: string };
}

function loadValidator(): ValidatorModule {
  // Resolved from aws-cdk-lib's own dependencies: it is not a dependency of this package by that name.
  const fromCdk = createRequire(createRequire(import.meta.url).resolve('aws-cdk-lib/package.json'));
  return fromCdk('@aws/cloudformation-validate') as ValidatorModule;
}

/** Every diagnostic for one template (JSON text or an object), errors first. */
export function validateTemplate(template: string | object, name = 'template.json'): TemplateDiagnostic[] {
  const order = ['ERROR', 'WARN', 'INFO'];
  return validateTemplates([{ name, template }])
    .get(name)!
    .sort((a, b) => order.indexOf(a.severity) - order.indexOf(b.severity));
}

/** Validates several templates with one engine (building it takes seconds; validating, milliseconds). */
export function validateTemplates(
  templates: { name: string; template: string | object }[],
): Map<string, TemplateDiagnostic[]> {
  const validator = loadValidator();
  const engine = new validator.CompositeEngine();
  const out = new Map<string, TemplateDiagnostic[]>();
  try {
    for (const { name, template } of templates) {
      const text = typeof template === 'string' ? template : JSON.stringify(template);
      const report = engine.validateTemplate(new validator.TemplateContent(text, name));
      out.set(
        name,
        report.diagnostics.map((d) => ({
          severity: d.severity,
          ruleId: d.ruleId,
          message: d.message,
          where: d.entity?.logicalId ?? d.entity?.name ?? '',
        })),
      );
    }
  } finally {
    engine.free();
  }
  return out;
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const { readFileSync } = await import('node:fs');
  const files = process.argv.slice(2);
  const results = validateTemplates(files.map((f) => ({ name: f, template: readFileSync(f, 'utf8') })));
  let errors = 0;
  for (const [file, diagnostics] of results) {
    for (const d of diagnostics.filter((x) => x.severity !== 'INFO'))
      console.log(`${file}: ${d.severity} ${d.ruleId} ${d.where}: ${d.message}`);
    errors += diagnostics.filter((d) => d.severity === 'ERROR').length;
  }
  console.log(`${files.length} template(s), ${errors} error(s)`);
  process.exitCode = errors ? 1 : 0;
}
