/**
 * Waits for a workflow result on behalf of a person, at most `ms`; past that the run goes on in
 * Temporal (or wherever it runs) and the caller gets `timeoutError`.
 */
export async function waitAtMost<T>(result: Promise<T>, ms: number, timeoutError: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timeoutError()), ms);
  });
  try {
    return await Promise.race([result, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
