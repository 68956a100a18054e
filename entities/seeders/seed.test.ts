import bcrypt from 'bcrypt';
import { loadConfig } from '../../lib/config';
import { initOrm, type Orm } from '../../lib/orm';
import { Organization } from '../organization.entity';
import { ToolDefinition } from '../tool-definition.entity';
import { User, UserRole } from '../user.entity';
import { seed, SEED_ADMIN_EMAIL, SEED_ORGANIZATION } from './seed';
import { TOOL_CATALOG } from './tool-catalog';

describe('seed', () => {
  let orm: Orm;
  beforeAll(async () => {
    orm = await initOrm(loadConfig().database.url!);
  });
  afterAll(() => orm.close(true));

  it('creates one organisation, one ADMIN with a printed-once password, and the tool catalog; reruns change nothing', async () => {
    const first = await seed(orm.em.fork(), { bcryptCost: 4 });
    expect(first.adminPassword).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(first.toolsCreated).toBe(TOOL_CATALOG.length);

    const admin = await orm.em.fork().findOneOrFail(User, { email: SEED_ADMIN_EMAIL }, { populate: ['passwordHash', 'organization'] });
    expect(admin.role).toBe(UserRole.ADMIN);
    expect(admin.organization.slug).toBe(SEED_ORGANIZATION.slug);
    expect(admin.passwordHash).not.toContain(first.adminPassword);
    expect(await bcrypt.compare(first.adminPassword!, admin.passwordHash)).toBe(true);

    const second = await seed(orm.em.fork(), { bcryptCost: 4 });
    expect(second.adminPassword).toBeUndefined();
    expect(second).toMatchObject({ organizationId: first.organizationId, toolsCreated: 0, toolsUpdated: 0 });
    const em = orm.em.fork();
    expect(await em.count(Organization, { slug: SEED_ORGANIZATION.slug })).toBe(1);
    expect(await em.count(User, { email: SEED_ADMIN_EMAIL })).toBe(1);

    const tools = await em.find(ToolDefinition, { builtin: true });
    for (const required of [
      'git',
      'gh',
      'docker',
      'docker-compose',
      'kubectl',
      'helm',
      'nodejs',
      'python3',
      'go',
      'rust',
      'pnpm',
      'psql',
      'redis-cli',
      'jq',
      'curl',
      'ripgrep',
      'tmux',
      'terraform',
    ]) {
      const tool = tools.find((t) => t.name === required);
      expect(tool).toMatchObject({
        name: required,
        installCommand: expect.any(String),
        uninstallCommand: expect.any(String),
        versionCommand: expect.any(String),
        versionRegex: expect.any(String),
      });
    }
  });

  it('updates a built-in tool whose catalog entry changed', async () => {
    await seed(orm.em.fork(), { bcryptCost: 4 });
    await orm.em.fork().nativeUpdate(ToolDefinition, { name: 'jq', organization: null }, { versionCommand: 'outdated' });
    const result = await seed(orm.em.fork(), { bcryptCost: 4 });
    expect(result.toolsUpdated).toBe(1);
    const jq = await orm.em.fork().findOneOrFail(ToolDefinition, { name: 'jq', organization: null });
    expect(jq.versionCommand).toBe(TOOL_CATALOG.find((t) => t.name === 'jq')!.versionCommand);
  });
});
