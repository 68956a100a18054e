import { setImmediate as nextTurn } from 'node:timers/promises';

/**
 * How many notifications a run sends in a row before the host gives the event loop a turn.
 * Sending one is a write to the response, which never waits, and a run that streams fast (a
 * backlog of queued events, an engine with nothing between two events) would otherwise send
 * thousands in one turn: for seconds on a busy machine, no timer, socket or other request of
 * the process runs. The host's own tasks/get and cancels, and whatever shares its process (a
 * worker's activity heartbeats, in the tests), would wait that long.
 */
export const SENDS_PER_TURN = 64;

/** Counts a stream's sends and gives the event loop a turn after every SENDS_PER_TURN of them. */
export class EventLoopTurns {
  private sends = 0;

  async sent(): Promise<void> {
    if (++this.sends % SENDS_PER_TURN === 0) await nextTurn();
  }
}
