/** `npm run bench`: every benchmark, one after another. Each prints its own numbers. */
import { runWbxmlBench } from './wbxml.ts';

runWbxmlBench();
