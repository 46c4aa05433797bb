/**
 * The commands this server implements. Each module in src/commands/ registers its definition here when imported
 * (src/commands/index.ts imports them all); OPTIONS advertises exactly what is registered.
 */
import type { CommandDefinition } from '../protocol/command.ts';
import type { CommandName } from '../protocol/commands.ts';

export class CommandRegistry {
  private readonly commands = new Map<CommandName, CommandDefinition>();

  register(definition: CommandDefinition): void {
    if (this.commands.has(definition.name)) throw new Error(`command ${definition.name} is registered twice`);
    this.commands.set(definition.name, definition);
  }

  get(name: CommandName): CommandDefinition | undefined {
    return this.commands.get(name);
  }

  /** Registered command names, in registration order. */
  names(): CommandName[] {
    return [...this.commands.keys()];
  }
}

/** The registry the shipped commands register themselves in. */
export const defaultRegistry = new CommandRegistry();

export function registerCommand(definition: CommandDefinition): void {
  defaultRegistry.register(definition);
}
