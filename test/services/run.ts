/**
 * `npm run services`: the test services on their own, for trying the server by hand (curl, a phone on the LAN).
 * Prints the endpoints as JSON and stops everything on Ctrl-C.
 */
import type { TestProject } from 'vitest/node';
import setup from './global-setup.ts';
import type { TestServices } from './types.ts';

let services: TestServices | undefined;
const project = { provide: (_key: string, value: TestServices) => (services = value) } as unknown as TestProject;
const teardown = await setup(project);
console.log(JSON.stringify(services, null, 2));
const stop = (): void => void teardown().then(() => process.exit(0));
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
