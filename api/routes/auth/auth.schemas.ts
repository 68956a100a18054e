import { z } from '../../zod';
import { Email, Name, OrganizationOut, Password, UserOut } from '../common.schemas';

export const RegisterBody = z
  .strictObject({ email: Email, password: Password, name: Name, organizationName: Name })
  .openapi('RegisterRequest');
export const LoginBody = z.strictObject({ email: Email, password: z.string().max(1024) }).openapi('LoginRequest');
export const RefreshBody = z.strictObject({ refreshToken: z.string().min(1).max(512) }).openapi('RefreshRequest');

export const AuthResponse = z
  .object({
    user: UserOut,
    organization: OrganizationOut,
    accessToken: z.string(),
    refreshToken: z.string(),
    expiresIn: z.number().int().openapi({ description: 'Access token lifetime in seconds' }),
  })
  .openapi('AuthResponse');

export const MeResponse = z
  .object({
    user: UserOut,
    organization: OrganizationOut,
    rules: z.array(z.array(z.unknown())).openapi({ description: "The caller's CASL rules, packed (@casl/ability/extra packRules)" }),
  })
  .openapi('Me');
