/** The smallest workflow there is, for bench/server-test-pace.ts: one workflow task, then complete. */
export async function paceProbe(): Promise<string> {
  return 'ok';
}
