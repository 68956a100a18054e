import type { SessionEndedEvent, SessionEndReason } from '../../domain/events';
import { sessionEndReason, type AuthContext } from '../auth/authenticate';
import type { AppDeps } from '../deps';

/** Whether a session-ended notice concerns this caller. */
export function endsSession(
  event: SessionEndedEvent,
  auth: Pick<AuthContext, 'organizationId' | 'userId' | 'familyId' | 'apiKey'>,
): boolean {
  if (event.organizationId !== auth.organizationId) return false;
  return (
    (event.userId !== undefined && event.userId === auth.userId) ||
    (event.familyId !== undefined && event.familyId === auth.familyId) ||
    // A revoked key ends what was opened with it; its owner's other logins and keys go on.
    (event.apiKeyId !== undefined && event.apiKeyId === auth.apiKey?.id)
  );
}

// setTimeout fires at once for delays above 2^31 - 1 ms; longer waits are taken in steps.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Calls `onExpired` at `expiresAt` (epoch ms), or at once if it has passed. Returns a cancel. */
export function atExpiry(expiresAt: number, onExpired: () => void): () => void {
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    const left = expiresAt - Date.now();
    if (left <= 0) return onExpired();
    timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
    timer.unref();
  };
  arm();
  return () => clearTimeout(timer);
}

/**
 * Watches the session of one long-lived response (an SSE stream): calls `onEnd` once, with the
 * reason, when a session-ended notice concerns it, when its access token expires, or when a
 * check finds it ended. Checked once right after subscribing, because an end committed between
 * the request's authentication and the subscription sent its notice to nobody; and again after
 * the hub's LISTEN connection comes back, because notices are not replayed. Returns a stop.
 */
export function watchSession(
  deps: Pick<AppDeps, 'orm' | 'events' | 'logger'>,
  auth: AuthContext,
  onEnd: (reason: SessionEndReason) => void,
): () => void {
  let stopped = false;
  let unsubscribe = () => undefined as unknown;
  let cancelTimer = () => undefined as unknown;
  const stop = () => {
    stopped = true;
    unsubscribe();
    cancelTimer();
  };
  const end = (reason: SessionEndReason) => {
    if (stopped) return;
    stop();
    onEnd(reason);
  };
  const check = () => {
    sessionEndReason(deps, auth)
      .then((reason) => reason && end(reason))
      .catch((error: unknown) => deps.logger.warn({ err: error }, 'could not check a session'));
  };
  unsubscribe = deps.events.subscribe((event) => {
    if (event.type === 'session:ended' && endsSession(event, auth)) end(event.reason);
    else if (event.type === 'hub:reconnected') check();
  });
  cancelTimer = atExpiry(auth.tokenExpiresAt, () => end('token_expired'));
  if (!stopped) check();
  return stop;
}
