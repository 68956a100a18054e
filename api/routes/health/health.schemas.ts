import { z } from '../../zod';

const PartStatus = z.enum(['ok', 'error']);

export const HealthResponse = z
  .object({
    status: z.enum(['ok', 'error']),
    db: PartStatus,
    temporal: PartStatus,
    errors: z.record(z.string(), z.string()).optional().openapi({ description: 'What failed, by part (only when a part failed)' }),
  })
  .openapi('Health');
