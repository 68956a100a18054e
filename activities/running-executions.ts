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

  get size(): number {
    return this.controllers.size;
  }
}
