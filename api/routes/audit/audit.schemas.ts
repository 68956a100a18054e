import { z } from '../../zod';
import { NON_BLANK_TEXT_PATTERN } from '../../validate';
import { pageQuery, pageSchema } from '../../pagination';
import { Timestamp } from '../../timestamps';

export const ListAuditQuery = z
  .strictObject({
    ...pageQuery,
    action: z
      .string()
      .trim()
      .min(1)
      .max(100)
      .optional()
      .openapi({ description: 'Exact action, e.g. user.update, or a prefix ending in * (auth.*)', pattern: NON_BLANK_TEXT_PATTERN }),
    actorId: z.uuid().optional(),
    resourceType: z.string().trim().min(1).max(64).optional().openapi({ pattern: NON_BLANK_TEXT_PATTERN }),
    resourceId: z.string().trim().min(1).max(64).optional().openapi({ pattern: NON_BLANK_TEXT_PATTERN }),
    from: Timestamp.optional().openapi({ description: 'ISO 8601, inclusive; before `to` when both are given' }),
    to: Timestamp.optional().openapi({ description: 'ISO 8601, exclusive' }),
  })
  .refine((q) => !q.from || !q.to || new Date(q.from) < new Date(q.to), { message: 'from must be before to', path: ['from'] });

export const AuditOut = z
  .object({
    id: z.uuid(),
    action: z.string(),
    actor: z
      .object({
        id: z.uuid().nullable(),
        email: z.string().nullable(),
        apiKey: z
          .object({ id: z.uuid(), name: z.string(), prefix: z.string() })
          .optional()
          .openapi({ description: 'The API key the actor (its owner) acted through; absent for a login. Never the secret' }),
      })
      .nullable(),
    resourceType: z.string(),
    resourceId: z.string().nullable(),
    changes: z.record(z.string(), z.unknown()).nullable(),
    ip: z.string().nullable(),
    requestId: z.string().nullable(),
    createdAt: z.string(),
  })
  .openapi('AuditEntry');

export const AuditPage = pageSchema(AuditOut).openapi('AuditPage');
