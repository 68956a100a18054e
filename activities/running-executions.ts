/** The executions this worker process is running, by id, with the means to abort them. */
export class RunningExecutions {
  private readonly controllers = new Map<string, AbortController>();

  register(executionId: string): AbortController {
    const controller = new AbortController();
    this.controllers.set(executionId, controller);
    return controller;
  }

  unregister(executionId: string, controller: AbortController): void {
    if (this.controllers.get(executionId) === controller) this.controllers.delete(executionId);
  }

  abort(executionId: string, reason: string): boolean {
    const controller = this.controllers.get(executionId);
    if (!controller) return false;
    controller.abort(new Error(reason));
    return true;
  }

  private readonly inputWaiters = new Map<string, Set<() => void>>();

  /** Calls `wake` when a question of the run is answered (the control channel's `input` notice); returns the unsubscribe. */
  onInputAnswered(executionId: string, wake: () => void): () => void {
    let waiters = this.inputWaiters.get(executionId);
    if (!waiters) this.inputWaiters.set(executionId, (waiters = new Set()));
    waiters.add(wake);
    return () => {
      waiters.delete(wake);
      if (waiters.size === 0 && this.inputWaiters.get(executionId) === waiters) this.inputWaiters.delete(executionId);
    };
  }

  inputAnswered(executionId: string): boolean {
    const waiters = this.inputWaiters.get(executionId);
    for (const wake of waiters ?? []) wake();
    return Boolean(waiters?.size);
  }

  get size(): number {
    return this.controllers.size;
  }
}
