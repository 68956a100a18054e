import { z } from '../../zod';
import { NON_BLANK_TEXT_PATTERN } from '../../validate';
import { pageQuery, pageSchema } from '../../pagination';
import { Email, Name, Password, Role, UserOut } from '../common.schemas';

export const ListUsersQuery = z.strictObject({
  ...pageQuery,
  role: Role.optional(),
  q: z
    .string()
    .trim()
    .min(1)
    .max(200)
    .optional()
    .openapi({ description: 'Case-insensitive match on email or name', pattern: NON_BLANK_TEXT_PATTERN }),
});

export const CreateUserBody = z.strictObject({ email: Email, name: Name, role: Role, password: Password }).openapi('CreateUserRequest');

export const UpdateUserBody = z
  .strictObject({ role: Role.optional(), name: Name.optional() })
  .refine((b) => b.role !== undefined || b.name !== undefined, { message: 'give role or name' })
  .openapi('UpdateUserRequest', { minProperties: 1 });

export const UserPage = pageSchema(UserOut).openapi('UserPage');
