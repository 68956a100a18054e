/** Closes one part a composition root opened. */
export type Closer = () => unknown;

export interface Composed<T> {
  deps: T;
  /** Closes every part that was opened, last opened first; rethrows the first failure after trying them all. */
  close(): Promise<void>;
}

/**
 * Builds a process's dependencies: `build` opens the parts in order and registers how to close
 * each one with `closing`. If building fails, what was already opened is closed before the
 * error goes on, so a half-built process (or test) leaves no connection behind.
 */
export async function compose<T>(build: (closing: (closer: Closer) => void) => Promise<T>): Promise<Composed<T>> {
  const closers: Closer[] = [];
  const close = async () => {
    const failures: unknown[] = [];
    for (const closer of closers.splice(0).reverse()) {
      try {
        await closer();
      } catch (error) {
        failures.push(error);
      }
    }
    if (failures.length) throw failures[0];
  };
  try {
    return { deps: await build((closer) => closers.push(closer)), close };
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }
}
