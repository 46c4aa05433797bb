/** One JSON object per line on stdout: what every runtime's log collector understands. */

export type LogEntry = Record<string, string | number | boolean | undefined>;

export type LogSink = (entry: LogEntry) => void;

export const stdoutLog: LogSink = (entry) => {
  console.log(JSON.stringify(entry));
};
