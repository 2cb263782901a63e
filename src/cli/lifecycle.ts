/**
 * Process lifecycle for long-running commands: stop cleanly on SIGINT or
 * SIGTERM, and, with --exit-with-parent, when the parent process goes away
 * (its end of our stdin pipe closes), so that a parent that dies abruptly
 * leaves no process behind.
 */
/** A stop that takes longer than this is cut short (the process exits 1). */
export const STOP_DEADLINE_MS = 10_000;

export function onShutdown(stop: (reason: string) => Promise<void>, exitWithParent: boolean): void {
  let stopping = false;
  const run = (reason: string) => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => {
      console.error(`rebind: could not stop within ${STOP_DEADLINE_MS} ms; exiting`);
      process.exit(1);
    }, STOP_DEADLINE_MS).unref();
    stop(reason)
      .catch((err: Error) => console.error(`rebind: error while stopping: ${err.message}`))
      .finally(() => process.exit(0));
  };
  process.on('SIGINT', () => run('SIGINT'));
  process.on('SIGTERM', () => run('SIGTERM'));
  if (exitWithParent) {
    process.stdin.on('end', () => run('parent gone'));
    process.stdin.on('close', () => run('parent gone'));
    process.stdin.resume();
  }
}
