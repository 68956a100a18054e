/**
 * Who does something, as the domain sees it: a person through the API, a schedule, or a
 * workflow acting for one. Never a Koa context, so a schedule or an activity can run the same
 * command an HTTP request runs. `ip` and `requestId` exist only for requests.
 */
export interface Actor {
  userId?: string;
  organizationId: string;
  email?: string;
  ip?: string;
  requestId?: string;
  via: 'api' | 'schedule' | 'workflow';
  /** Set when the person acts through one of their API keys (the audit log names it beside them). */
  apiKey?: { id: string; name: string; prefix: string };
}
