/** `npm run bench`: every benchmark, one after another. Each prints its own numbers. */
import { runStateBench } from './state.ts';
import { runWbxmlBench } from './wbxml.ts';

runWbxmlBench();
await runStateBench();
