/**
 * The commands this server implements. Each module in src/commands/ registers its definition here when imported
 * (src/commands/index.ts names them all, each imported on its command's first request); OPTIONS advertises exactly
 * what is registered.
 */
import type { CommandDefinition } from '../protocol/command.ts';
import type { CommandName } from '../protocol/commands.ts';

export class CommandRegistry {
  private readonly commands = new Map<CommandName, CommandDefinition>();
  private readonly modules = new Map<CommandName, () => Promise<unknown>>();

  register(definition: CommandDefinition): void {
    if (this.commands.has(definition.name)) throw new Error(`command ${definition.name} is registered twice`);
    this.commands.set(definition.name, definition);
  }

  /**
   * A command whose module is imported on its first request; importing it registers the definition. A server that
   * was never asked for a command has loaded none of its code (nor the MIME and iCalendar libraries behind it): the
   * idle footprint (bench/footprint.ts).
   */
  registerModule(name: CommandName, load: () => Promise<unknown>): void {
    if (this.modules.has(name)) throw new Error(`command ${name} is registered twice`);
    this.modules.set(name, load);
  }

  async get(name: CommandName): Promise<CommandDefinition | undefined> {
    const known = this.commands.get(name);
    if (known) return known;
    const load = this.modules.get(name);
    if (!load) return undefined;
    await load();
    const loaded = this.commands.get(name);
    if (!loaded) throw new Error(`the module of command ${name} did not register it`);
    return loaded;
  }

  /** Registered command names, in registration order. */
  names(): CommandName[] {
    return [...new Set([...this.modules.keys(), ...this.commands.keys()])];
  }
}

/** The registry the shipped commands register themselves in. */
export const defaultRegistry = new CommandRegistry();

export function registerCommand(definition: CommandDefinition): void {
  defaultRegistry.register(definition);
}
