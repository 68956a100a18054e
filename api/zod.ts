import { extendZodWithOpenApi } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';

// Schemas import z from here so `.openapi()` exists whatever the module load order.
extendZodWithOpenApi(z);

export { z };

/** JSON Schema's `propertyNames` for `.openapi()`, which zod-to-openapi writes out but does not type. */
export function propertyNames(schema: { type?: 'string'; pattern?: string; maxLength?: number }): Record<string, never> {
  return { propertyNames: schema } as unknown as Record<string, never>;
}
