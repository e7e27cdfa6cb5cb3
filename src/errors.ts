// Errors every layer may throw and the command line maps to exit codes: a UsageError (the user asked
// for something wrong: a flag, a value, a missing option) exits 2, any other error exits 1.
// A leaf module: it imports nothing, so any layer can use it.

/** The command-line spelling of an option key, for messages: `pcaDim` → `--pca-dim`. */
export const flagName = (key: string): string => `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** The request itself is wrong (flag, value, combination); the message names the flag. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

const shown = (value: unknown): string => (value === undefined ? '' : ` ${typeof value === 'string' ? value : JSON.stringify(value)}`);

/** What an error about one option says, named as configs name it (`truncTe`, `resume`). */
interface NamesOption {
  readonly option: string;
  readonly detail: string;
  readonly value?: unknown;
}

/**
 * An option with a value the library cannot use (a usage error, exit 2), named as configs name it: a
 * config file or plan reports it by its key, the command line by its flag (`--trunc-te 4: ...`).
 */
export class OptionError extends UsageError implements NamesOption {
  constructor(readonly option: string, readonly detail: string, readonly value?: unknown) {
    super(`${option}${shown(value)}: ${detail}`);
    this.name = 'OptionError';
  }
}

/** A file or folder an option names is missing or not what it should be: a runtime error (exit 1), named as OptionError is. */
export class OptionFileError extends Error implements NamesOption {
  constructor(readonly option: string, readonly detail: string, readonly value?: unknown) {
    super(`${option}${shown(value)}: ${detail}`);
    this.name = 'OptionFileError';
  }
}

/** An error's message as the command line shows it: an option named by its flag. */
export function commandLineMessage(e: unknown): string {
  if (e instanceof OptionError || e instanceof OptionFileError) return `${flagName(e.option)}${shown(e.value)}: ${e.detail}`;
  return (e as Error).message;
}
