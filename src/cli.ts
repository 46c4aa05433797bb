/** The activesync-edge command line. Each area adds its commands here. */
import { Command, CommanderError } from 'commander';
import { decodeCommand, encodeCommand } from './wbxml/cli.ts';
import { addAdminCommands } from './admin/cli.ts';
import { addTopCommand } from './admin/top.ts';
import { addReplayCommand } from './replay/cli.ts';
import { addDeployCommands } from '../infra/cli.ts';

export function buildProgram(): Command {
  const program = new Command('activesync-edge').description('Exchange ActiveSync server tools').exitOverride();

  const wbxml = program.command('wbxml').description('read and write ActiveSync WBXML');
  wbxml
    .command('decode')
    .description('print a WBXML document as XML with the specification tag names')
    .argument('[file]', 'WBXML file, or - for stdin', '-')
    .action((file: string) => decodeCommand(file, (s) => process.stdout.write(s)));
  wbxml
    .command('encode')
    .description('turn the XML form back into WBXML (written to stdout)')
    .argument('[file]', 'XML file, or - for stdin', '-')
    .action((file: string) => encodeCommand(file, (b) => process.stdout.write(b)));
  addAdminCommands(program);
  addTopCommand(program);
  addReplayCommand(program);
  addDeployCommands(program);
  return program;
}

/** Runs the CLI; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    process.stderr.write(`activesync-edge: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
