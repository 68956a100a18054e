import { z } from '../../zod';
import { pageQuery, pageSchema } from '../../pagination';
import { Timestamp } from '../../timestamps';
import { Name, Role } from '../common.schemas';

export const CreateApiKeyBody = z
  .strictObject({
    name: Name.openapi({ description: 'What the key is for, to recognise it in the list (1-200 characters)', example: 'CI deploy script' }),
    role: Role.optional().openapi({
      description:
        "The most the key may do: at most your own role (403 `role_too_high` otherwise); your role when left out. On every request the lower of this and the owner's current role applies",
    }),
    expiresAt: Timestamp.optional().openapi({
      description: 'When the key stops working (ISO 8601 with offset, in the future); never when left out',
    }),
  })
  .openapi('CreateApiKeyRequest');

export const ListApiKeysQuery = z.strictObject({ ...pageQuery });

export const ApiKeyOut = z
  .object({
    id: z.uuid(),
    name: z.string(),
    role: Role.openapi({ description: "The key's own role; the owner's current role caps it on each request" }),
    prefix: z.string().openapi({ description: "The key's first characters, to recognise it; not the secret", example: 'mcpf_3f9a1b2c' }),
    owner: z.object({ id: z.uuid(), email: z.string() }).openapi({ description: 'The person the key acts for' }),
    createdAt: z.string(),
    lastUsedAt: z.string().nullable().openapi({ description: 'Last request with the key, to the minute (written at most once a minute)' }),
    expiresAt: z.string().nullable(),
    revokedAt: z.string().nullable().openapi({ description: 'When it was revoked (`DELETE /api/api-keys/:id`); it no longer works' }),
  })
  .openapi('ApiKey');

export const ApiKeyWithSecretOut = ApiKeyOut.extend({
  key: z.string().openapi({
    description:
      'The key, shown in this answer only: send it as `Authorization: Bearer <key>`. Only a keyed hash of it is stored, so it cannot be shown again',
    example: 'mcpf_3f9a1b2c4d5e6f708192a3b4c5d6e7f8_Wm9vYmFyLWJhei1xdXV4LXF1dXgtcXV1eC1xdXV4LXE',
  }),
}).openapi('ApiKeyWithSecret');

export const ApiKeyPage = pageSchema(ApiKeyOut).openapi('ApiKeyPage');
