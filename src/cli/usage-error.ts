/** A mistake on the command line: printed with a hint to --help, exit status 2 (as getopt tools do). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The admin API could not be reached or answered with an error: exit status 1. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
}
