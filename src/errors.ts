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
