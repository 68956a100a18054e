import { z } from '../zod';
import { PASSWORD_MAX_BYTES, PASSWORD_MIN_BYTES } from '../auth/passwords';
import { ROLES } from '../auth/abilities';
import { NON_BLANK_TEXT_PATTERN } from '../validate';

/** Request bodies are strict objects: an unknown field is a 400 naming it, never silently dropped. */

export const Email = z
  .string()
  .trim()
  .max(320, 'at most 320 characters')
  .toLowerCase()
  .pipe(z.email('must be an email address'))
  // zod's email rule, stricter than JSON Schema's `format: email`.
  .openapi({ example: 'ada@example.com', type: 'string', format: 'email', pattern: z.regexes.email.source });

export const Password = z
  .string()
  .superRefine((value, ctx) => {
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes < PASSWORD_MIN_BYTES) ctx.addIssue({ code: 'custom', message: `must be at least ${PASSWORD_MIN_BYTES} bytes` });
    if (bytes > PASSWORD_MAX_BYTES)
      ctx.addIssue({ code: 'custom', message: `must be at most ${PASSWORD_MAX_BYTES} bytes (bcrypt ignores the rest)` });
  })
  // JSON Schema counts characters, not bytes: the lengths are the bounds for ASCII, the description the rule.
  .openapi({
    description: `${PASSWORD_MIN_BYTES} to ${PASSWORD_MAX_BYTES} bytes in UTF-8 (bcrypt reads no further): ${PASSWORD_MAX_BYTES} ASCII characters, fewer of other scripts (é is 2 bytes, most CJK characters 3)`,
    minLength: PASSWORD_MIN_BYTES,
    maxLength: PASSWORD_MAX_BYTES,
  });

export const Name = z.string().trim().min(1, 'required').max(200, 'at most 200 characters').openapi({ pattern: NON_BLANK_TEXT_PATTERN });

export const Role = z.enum(ROLES as [string, ...string[]]).openapi({ description: 'ADMIN, MANAGER, OPERATOR or VIEWER' });

export const IdParams = z.strictObject({ id: z.uuid('must be a uuid') });

export const OrganizationOut = z
  .object({ id: z.uuid(), name: z.string(), slug: z.string(), createdAt: z.string() })
  .openapi('Organization');

export const UserOut = z
  .object({
    id: z.uuid(),
    email: z.string(),
    name: z.string(),
    role: Role,
    organizationId: z.uuid(),
    lastLoginAt: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('User');
