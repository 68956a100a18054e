import { extendZodWithOpenApi } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';

// Schemas import z from here so `.openapi()` exists whatever the module load order.
extendZodWithOpenApi(z);

export { z };

/** JSON Schema keywords for `.openapi()` that zod-to-openapi writes out but does not type (`propertyNames`, `if`/`then`). */
export function keywords(schema: Record<string, unknown>): Record<string, never> {
  return schema as Record<string, never>;
}

/** JSON Schema's `propertyNames`, for `.openapi()`. */
export function propertyNames(schema: { type?: 'string'; pattern?: string; maxLength?: number }): Record<string, never> {
  return keywords({ propertyNames: schema });
}
