/** The one error type handlers throw; the error middleware turns it into `{error:{code,message,details?}}`. */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'AppError';
  }

  static badRequest(code: string, message: string, details?: unknown): AppError {
    return new AppError(400, code, message, details);
  }

  static notFound(resource = 'Resource'): AppError {
    return new AppError(404, 'not_found', `${resource} not found`);
  }

  static conflict(code: string, message: string, details?: unknown): AppError {
    return new AppError(409, code, message, details);
  }
}

export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}
