/**
 * The Node runtime's log sink: the JSON lines of log.ts stdoutLog, written to stdout together once per turn of the
 * event loop. On Linux a write to a pipe or file is synchronous, one system call per console.log: the thousands of
 * Pings answered at the end of one heartbeat would pay one each. Lines still buffered when the process exits are
 * written then, synchronously.
 */
import { writeSync } from 'node:fs';
import type { LogSink } from '../log.ts';

export function batchedStdoutLog(): LogSink {
  let lines: string[] = [];
  let scheduled = false;
  const take = (): string => {
    const text = lines.join('');
    lines = [];
    return text;
  };
  process.on('exit', () => {
    if (lines.length) writeSync(1, take());
  });
  return (entry) => {
    lines.push(`${JSON.stringify(entry)}\n`);
    if (scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      if (lines.length) process.stdout.write(take());
    });
  };
}
