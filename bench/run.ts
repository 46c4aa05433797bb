/** `npm run bench`: every benchmark, one after another. Each prints its own numbers. */
import { runDeployBench } from './deploy.ts';
import { runEmailBench } from './email.ts';
import { runPushBench } from './push.ts';
import { runStateBench } from './state.ts';
import { runSyncBench } from './sync.ts';
import { runWbxmlBench } from './wbxml.ts';

runWbxmlBench();
await runStateBench();
await runEmailBench();
await runSyncBench([1_000, 10_000, 100_000], ['small', 'realistic']);
await runPushBench();
await runDeployBench();
