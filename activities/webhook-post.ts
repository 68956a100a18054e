import { Agent, fetch as undiciFetch } from 'undici';
import { assertSafeUrl, policyLookup, UnsafeUrlError, type UrlPolicy } from '../lib/ssrf';

/** What a receiver answered to one attempt, or why there was no answer. */
export type WebhookPostResult =
  | { kind: 'answered'; status: number; retryAfterMs?: number }
  | { kind: 'unreachable'; error: string }
  /** The URL policy refused the address (now, at connection time): no retry changes that. */
  | { kind: 'refused'; error: string };

/** Retry-After in seconds or as an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function refusal(error: unknown): UnsafeUrlError | undefined {
  for (let e: unknown = error; e instanceof Error; e = e.cause) if (e instanceof UnsafeUrlError) return e;
  return undefined;
}

/**
 * One signed POST. The address is checked by the servers' URL policy twice: the URL before
 * anything is sent (literal IPs never reach a lookup), and every name the socket resolves at
 * connect time (a name that rebinds to a forbidden address after the first check). Redirects
 * are answers, never followed: a receiver cannot point us at another host.
 */
export async function postWebhook(
  policy: UrlPolicy,
  url: string,
  headers: Record<string, string>,
  body: string,
  timeoutMs: number,
): Promise<WebhookPostResult> {
  const agent = new Agent({ connect: { lookup: policyLookup(policy) } });
  try {
    await assertSafeUrl(url, policy);
    const res = await undiciFetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'mcp-fleet-webhooks', ...headers },
      body,
      redirect: 'manual',
      dispatcher: agent,
      signal: AbortSignal.timeout(timeoutMs),
    });
    // Only the status matters; the body is read away so the socket can close.
    await res.arrayBuffer().catch(() => undefined);
    return { kind: 'answered', status: res.status, retryAfterMs: retryAfterMs(res.headers.get('retry-after')) };
  } catch (error) {
    const refused = refusal(error);
    if (refused) return { kind: 'refused', error: refused.message };
    const e = error as Error & { cause?: { code?: string; message?: string } };
    const reason = e.name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : (e.cause?.code ?? e.cause?.message ?? e.message);
    return { kind: 'unreachable', error: reason };
  } finally {
    await agent.close().catch(() => undefined);
  }
}
