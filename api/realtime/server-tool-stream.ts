import type { EntityManager } from '@mikro-orm/postgresql';
import { ServerTool, ServerToolStatus } from '../../entities';
import type { ServerToolPayload } from '../../domain/events';
import { BUSY_STATUSES, SETTLED_STATUSES } from '../../domain/tools/install-state';
import type { AppContext } from '../context';
import type { AuthContext } from '../auth/authenticate';
import type { AppDeps } from '../deps';
import { openEventStream } from './sse';

/** The tool's state as a `server:tool` payload, read from its row (none: NOT_INSTALLED). */
export async function currentToolState(
  em: EntityManager,
  serverId: string,
  tool: { id: string; name: string },
): Promise<ServerToolPayload> {
  const row = await em.fork().findOne(ServerTool, { server: serverId, tool: tool.id });
  const status = row?.status ?? ServerToolStatus.NOT_INSTALLED;
  return {
    serverId,
    toolId: tool.id,
    toolName: tool.name,
    status,
    previousStatus: null,
    version: row?.installedVersion ?? null,
    error: status === ServerToolStatus.FAILED || status === ServerToolStatus.NOT_INSTALLED ? (row?.lastError ?? null) : null,
    at: (row?.updatedAt ?? new Date()).toISOString(),
  };
}

export interface ToolStreamStart {
  /** Sent first as `event: started` (the install and uninstall routes). */
  started?: Record<string, unknown>;
  /** Whether the tool's workflow still runs; absent: nothing runs, the stream sends the state and ends. */
  running?: () => Promise<boolean>;
}

/** How often an open stream asks whether the workflow has ended without a last event reaching it. */
const RUNNING_CHECK_MS = 2000;

/**
 * Follows one catalog tool on one server as SSE while its install or uninstall runs: each
 * `server:tool` event of that tool and server as `event: status`, ending after the change
 * settles (INSTALLED, NOT_INSTALLED or FAILED after INSTALLING or REMOVING), or once the
 * workflow is found ended, with the state its row then holds. Created before the workflow starts, so
 * its first event is not missed; `stop()` lets go when the start is refused.
 */
export class ServerToolFollower {
  private readonly buffered: ServerToolPayload[] = [];
  private readonly unsubscribe: () => void;
  private sink?: (payload: ServerToolPayload) => void;
  private stopTimer = () => undefined as unknown;

  constructor(
    private readonly deps: AppDeps,
    private readonly serverId: string,
    private readonly tool: { id: string; name: string },
  ) {
    this.unsubscribe = deps.events.subscribe((event) => {
      if (event.type !== 'server:tool' || event.serverId !== serverId || event.toolId !== tool.id) return;
      const { type: _type, organizationId: _org, ...payload } = event;
      if (this.sink) this.sink(payload);
      else this.buffered.push(payload);
    });
  }

  stop(): void {
    this.unsubscribe();
  }

  async stream(ctx: AppContext, auth: AuthContext, start: ToolStreamStart): Promise<void> {
    const out = openEventStream(ctx, this.deps, auth, 'mcp-fleet server tool', () => {
      this.unsubscribe();
      this.stopTimer();
    });
    let last: ServerToolPayload | undefined;
    let changing = false;
    const write = (payload: ServerToolPayload) => {
      if (out.ended) return;
      out.send('status', payload);
      last = payload;
      if (BUSY_STATUSES.includes(payload.status as ServerToolStatus)) changing = true;
      else if (changing && SETTLED_STATUSES.includes(payload.status as ServerToolStatus)) out.end();
    };
    if (start.started) out.send('started', start.started);
    const current = await currentToolState(this.deps.orm.em, this.serverId, this.tool);
    // The state as the row holds it, unless events came in meanwhile: those are newer.
    if (!this.buffered.length) write(current);
    this.sink = write;
    this.buffered.splice(0).forEach(write);
    if (!start.running || out.ended) return out.end();
    const running = start.running;
    // The workflow may end without a settled event reaching this instance: cancelled before it
    // changed anything, or a notice lost while the hub reconnected. Then the row says how it ended.
    const timer = setInterval(() => {
      void running()
        .then(async (stillRunning) => {
          if (stillRunning || out.ended) return;
          const final = await currentToolState(this.deps.orm.em, this.serverId, this.tool);
          if (!last || last.status !== final.status || last.version !== final.version || last.error !== final.error)
            out.send('status', final);
          out.end();
        })
        .catch((error: unknown) =>
          this.deps.logger.warn(
            { err: error, serverId: this.serverId, toolId: this.tool.id },
            'server tool stream: could not check the workflow',
          ),
        );
    }, RUNNING_CHECK_MS);
    this.stopTimer = () => clearInterval(timer);
  }
}
