/** A duration as a person reads it in a sentence: "24 h", "90 min", "2 s" (pure: workflows use it too). */
export function describeDuration(ms: number): string {
  if (ms >= 3600_000 && ms % 3600_000 === 0) return `${ms / 3600_000} h`;
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms >= 1000) return `${Math.round(ms / 100) / 10} s`;
  return `${ms} ms`;
}

/** The error of a run whose question nobody answered in time. */
export function inputTimeoutMessage(timeoutMs: number): string {
  return `no answer to the input request within ${describeDuration(timeoutMs)}`;
}
