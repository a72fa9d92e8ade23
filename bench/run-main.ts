/**
 * Runs a bench script's `main`: exit 0 when it ends, 1 with the error's stack on stderr when it
 * throws. Exits explicitly either way, so that child processes' pipes, sockets or timers a run
 * left behind never keep the script alive after its figures are out.
 */
export function runMain(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
