import { randomBytes } from 'node:crypto';
import bcrypt from 'bcrypt';
import type { EntityManager } from '@mikro-orm/postgresql';
import { McpServer } from '../mcp-server.entity';
import { Organization } from '../organization.entity';
import { ToolDefinition } from '../tool-definition.entity';
import { User, UserRole } from '../user.entity';
import { TOOL_CATALOG } from './tool-catalog';

export const SEED_ORGANIZATION = { name: 'Default', slug: 'default' } as const;
export const SEED_ADMIN_EMAIL = 'admin@mcp-fleet.local';

export interface SeedResult {
  organizationId: string;
  adminEmail: string;
  /** Only on the run that created the admin: shown once, never stored in clear. */
  adminPassword?: string;
  toolsCreated: number;
  toolsUpdated: number;
}

/** Upserts the built-in tool catalog: new tools are added, changed commands are updated. */
async function seedToolCatalog(em: EntityManager): Promise<{ created: number; updated: number }> {
  const existing = new Map((await em.find(ToolDefinition, { organization: null })).map((t) => [t.name, t]));
  let created = 0;
  let updated = 0;
  for (const entry of TOOL_CATALOG) {
    const current = existing.get(entry.name);
    const values = {
      displayName: entry.displayName,
      description: entry.description,
      category: entry.category,
      installCommand: entry.installCommand,
      uninstallCommand: entry.uninstallCommand,
      versionCommand: entry.versionCommand,
      versionRegex: entry.versionRegex,
      homepage: entry.homepage,
      builtin: true,
    };
    if (!current) {
      em.create(ToolDefinition, { name: entry.name, ...values });
      created++;
    } else if (current.builtin && Object.entries(values).some(([k, v]) => current[k as keyof typeof values] !== v)) {
      em.assign(current, values);
      updated++;
    }
  }
  return { created, updated };
}

/** Idempotent: the first run creates the organisation and its ADMIN; later runs only refresh the catalog. */
export async function seed(em: EntityManager, options: { bcryptCost: number }): Promise<SeedResult> {
  return em.transactional(async (tx) => {
    const tools = await seedToolCatalog(tx);
    let organization = await tx.findOne(Organization, { slug: SEED_ORGANIZATION.slug });
    let adminPassword: string | undefined;
    if (!organization) {
      organization = tx.create(Organization, { ...SEED_ORGANIZATION });
    }
    const admin = await tx.findOne(User, { email: SEED_ADMIN_EMAIL });
    if (!admin) {
      adminPassword = randomBytes(12).toString('base64url');
      tx.create(User, {
        organization,
        email: SEED_ADMIN_EMAIL,
        name: 'Administrator',
        role: UserRole.ADMIN,
        passwordHash: await bcrypt.hash(adminPassword, options.bcryptCost),
      });
    }
    await tx.flush();
    return {
      organizationId: organization.id,
      adminEmail: SEED_ADMIN_EMAIL,
      adminPassword,
      toolsCreated: tools.created,
      toolsUpdated: tools.updated,
    };
  });
}

export const DEMO_SERVER_NAME = 'local-host';

/**
 * Registers the local reference host (started by `npm run dev`) as a server of the seeded
 * organisation, once; its token is sealed like any master token.
 */
export async function seedDemoServer(
  em: EntityManager,
  organizationId: string,
  demo: { url: string; token: string; seal: (serverId: string, token: string) => { keyId: string; ciphertext: string } },
): Promise<boolean> {
  const organization = em.getReference(Organization, organizationId);
  if (await em.count(McpServer, { organization, name: DEMO_SERVER_NAME })) return false;
  const server = em.create(McpServer, {
    organization,
    name: DEMO_SERVER_NAME,
    description: 'Reference MCP agent host started by npm run dev: its agents run commands on this machine (shell engine by default)',
    url: demo.url,
    masterTokenCiphertext: '',
    masterTokenKeyId: '',
    masterTokenLast4: demo.token.slice(-4),
  });
  const sealed = demo.seal(server.id, demo.token);
  server.masterTokenCiphertext = sealed.ciphertext;
  server.masterTokenKeyId = sealed.keyId;
  await em.flush();
  return true;
}
