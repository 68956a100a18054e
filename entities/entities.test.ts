import { UniqueConstraintViolationException, wrap } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { initOrm, type Orm } from '../lib/orm';
import { loadConfig } from '../lib/config';
import { makeAgent, makeOrganization, makeServer, makeUser } from '../test/factories';
import {
  Agent,
  AgentRole,
  AgentStatus,
  AgentToolPermission,
  AuditLog,
  Execution,
  ExecutionEvent,
  ExecutionEventType,
  ExecutionInput,
  ExecutionInputStatus,
  ExecutionStatus,
  ExecutionTrigger,
  McpServer,
  Organization,
  ServerStatus,
  ServerTool,
  Session,
  Task,
  ToolDefinition,
  User,
} from '.';

describe('data model on a migrated PostgreSQL', () => {
  let orm: Orm;
  let em: EntityManager;

  beforeAll(async () => {
    orm = await initOrm(loadConfig().database.url!);
  });
  afterAll(() => orm.close(true));
  beforeEach(() => {
    em = orm.em.fork();
  });

  it('has every migration applied and the committed snapshot matches the entities', async () => {
    const migrator = orm.getMigrator();
    expect(await migrator.getPendingMigrations()).toEqual([]);
    expect(await migrator.checkMigrationNeeded()).toBe(false);
  });

  it('creates the tables and list-filter indexes of the design', async () => {
    const tables = await em.getConnection().execute<{ tablename: string }[]>("select tablename from pg_tables where schemaname = 'public'");
    expect(tables.map((t) => t.tablename)).toEqual(
      expect.arrayContaining([
        'organizations',
        'users',
        'sessions',
        'mcp_servers',
        'agents',
        'tasks',
        'executions',
        'execution_events',
        'tool_definitions',
        'server_tools',
        'agent_tool_permissions',
        'audit_logs',
      ]),
    );
    const indexes = await em.getConnection().execute<{ indexdef: string }[]>("select indexdef from pg_indexes where schemaname = 'public'");
    const defs = indexes.map((i) => i.indexdef);
    for (const expected of [
      /ON public\.executions USING btree \(organization_id, status, created_at\)/,
      /ON public\.agents USING btree \(organization_id, status\)/,
      /ON public\.agents USING gin \(capabilities\)/,
      /ON public\.audit_logs USING btree \(organization_id, action, created_at\)/,
      /UNIQUE INDEX .* ON public\.execution_events USING btree \(execution_id, seq\)/,
      /UNIQUE INDEX .* ON public\.mcp_servers USING btree \(organization_id, name\)/,
    ]) {
      expect(defs).toEqual(expect.arrayContaining([expect.stringMatching(expected)]));
    }
  });

  it('stores a full graph: organisation → server → agents → task → execution → events, tools, permissions, audit', async () => {
    const org = makeOrganization(em);
    const admin = makeUser(em, org);
    const server = makeServer(em, org);
    const master = makeAgent(em, server, AgentRole.MASTER);
    const worker = makeAgent(em, server, AgentRole.WORKER, master);
    worker.capabilities = ['git', 'deploy'];
    const task = em.create(Task, {
      organization: org,
      title: 'nightly',
      prompt: 'Run the build\n\n  keep   spacing',
      agent: worker,
      createdBy: admin,
    });
    const execution = em.create(Execution, {
      organization: org,
      agent: worker,
      task,
      trigger: ExecutionTrigger.SCHEDULE,
      prompt: task.prompt,
    });
    em.create(ExecutionEvent, { execution, organization: org, seq: 1, type: ExecutionEventType.STATUS, payload: { status: 'RUNNING' } });
    em.create(ExecutionEvent, { execution, organization: org, seq: 2, type: ExecutionEventType.OUTPUT, payload: { text: 'hello' } });
    const git = em.create(ToolDefinition, {
      name: `git-${org.slug}`,
      displayName: 'Git',
      category: 'vcs',
      installCommand: 'apt-get install -y git',
      uninstallCommand: 'apt-get purge -y git',
      versionCommand: 'git --version',
      builtin: false,
    });
    em.create(ServerTool, { organization: org, server, tool: git });
    em.create(AgentToolPermission, { organization: org, agent: worker, tool: git, allowedCommands: ['git status'] });
    em.create(Session, {
      user: admin,
      organization: org,
      refreshTokenHash: 'a'.repeat(64).slice(0, 56) + org.id.slice(0, 8),
      familyId: org.id,
      expiresAt: new Date(Date.now() + 1000),
    });
    em.create(AuditLog, {
      organization: org,
      actor: admin,
      action: 'server.create',
      resourceType: 'server',
      resourceId: server.id,
      changes: { name: server.name },
    });
    await em.flush();

    const fresh = orm.em.fork();
    const loaded = await fresh.findOneOrFail(Agent, worker.id, { populate: ['supervisor', 'server'] });
    expect(loaded.status).toBe(AgentStatus.PENDING_VALIDATION);
    expect(loaded.maxConcurrency).toBe(1);
    expect(loaded.capabilities).toEqual(['git', 'deploy']);
    expect(loaded.supervisor?.id).toBe(master.id);
    expect(loaded.server.status).toBe(ServerStatus.UNKNOWN);
    const storedTask = await fresh.findOneOrFail(Task, task.id);
    expect(storedTask.prompt).toBe('Run the build\n\n  keep   spacing');
    const storedExecution = await fresh.findOneOrFail(Execution, execution.id);
    expect(storedExecution).toMatchObject({ status: ExecutionStatus.QUEUED, todos: [], attempt: 1 });
    expect(await fresh.count(Agent, { organization: org, capabilities: { $contains: ['git'] } })).toBe(1);
  });

  it('enforces uniqueness: org slug, user email, server name per org, agent name per server, event seq per execution', async () => {
    const org = makeOrganization(em);
    const server = makeServer(em, org, 'alpha');
    const agent = makeAgent(em, server);
    const execution = em.create(Execution, { organization: org, agent, trigger: ExecutionTrigger.MANUAL });
    em.create(ExecutionEvent, { execution, organization: org, seq: 1, type: ExecutionEventType.STATUS, payload: {} });
    await em.flush();

    const attempts: Array<(e: EntityManager) => void> = [
      (e) => e.create(Organization, { name: 'dup', slug: org.slug }),
      (e) =>
        e.create(McpServer, {
          organization: e.getReference(Organization, org.id),
          name: 'alpha',
          url: 'http://x',
          masterTokenCiphertext: 'c',
          masterTokenKeyId: 'k',
        }),
      (e) =>
        e.create(Agent, {
          organization: e.getReference(Organization, org.id),
          server: e.getReference(McpServer, server.id),
          name: agent.name,
          displayName: 'x',
          role: AgentRole.WORKER,
        }),
      (e) =>
        e.create(ExecutionEvent, {
          execution: e.getReference(Execution, execution.id),
          organization: e.getReference(Organization, org.id),
          seq: 1,
          type: ExecutionEventType.OUTPUT,
          payload: {},
        }),
    ];
    for (const attempt of attempts) {
      const e = orm.em.fork();
      attempt(e);
      await expect(e.flush()).rejects.toBeInstanceOf(UniqueConstraintViolationException);
    }
    const user = makeUser(em, org);
    await em.flush();
    const e = orm.em.fork();
    makeUser(e, e.getReference(Organization, org.id)).email = user.email;
    await expect(e.flush()).rejects.toBeInstanceOf(UniqueConstraintViolationException);
  });

  it('keeps one open question per run: one PENDING at a time, and an open request key only once (a delivered one may come again)', async () => {
    const org = makeOrganization(em);
    const agent = makeAgent(em, makeServer(em, org));
    agent.status = AgentStatus.WAITING_INPUT;
    const execution = em.create(Execution, {
      organization: org,
      agent,
      trigger: ExecutionTrigger.API,
      status: ExecutionStatus.WAITING_INPUT,
      inputTimeoutMs: 5000,
    });
    const question = (status: ExecutionInputStatus, requestKey = 'k1') => ({
      organization: org.id,
      execution: execution.id,
      requestKey,
      message: 'ok?',
      requestedSchema: { type: 'object', properties: {} },
      status,
      expiresAt: new Date(),
    });
    em.create(ExecutionInput, question(ExecutionInputStatus.DELIVERED));
    em.create(ExecutionInput, question(ExecutionInputStatus.PENDING));
    em.create(ExecutionEvent, { execution, organization: org, seq: 1, type: ExecutionEventType.INPUT_REQUIRED, payload: {} });
    await em.flush();
    expect(await orm.em.fork().findOneOrFail(Execution, execution.id)).toMatchObject({
      status: ExecutionStatus.WAITING_INPUT,
      inputTimeoutMs: 5000,
      runMsUsed: 0,
    });

    for (const [status, key] of [
      [ExecutionInputStatus.PENDING, 'k2'],
      [ExecutionInputStatus.ANSWERED, 'k1'],
    ] as const) {
      const e = orm.em.fork();
      e.create(ExecutionInput, question(status, key));
      await expect(e.flush()).rejects.toBeInstanceOf(UniqueConstraintViolationException);
    }
    const e = orm.em.fork();
    e.create(ExecutionInput, question(ExecutionInputStatus.EXPIRED));
    await e.flush();
    expect(await orm.em.fork().count(ExecutionInput, { execution: execution.id })).toBe(3);
  });

  it('keeps secrets out of serialisation: password hashes and master token ciphertext are hidden', async () => {
    const org = makeOrganization(em);
    const user = makeUser(em, org);
    const server = makeServer(em, org);
    await em.flush();
    expect(wrap(user).toObject()).not.toHaveProperty('passwordHash');
    expect(JSON.stringify(user)).not.toContain('placeholder');
    expect(wrap(server).toObject()).not.toHaveProperty('masterTokenCiphertext');
    // Lazy columns are not even loaded by a plain find.
    const loaded = await orm.em.fork().findOneOrFail(McpServer, server.id);
    expect(wrap(loaded).toObject()).not.toHaveProperty('masterTokenCiphertext');
  });

  it('deletes an organisation with everything it owns, and keeps run history when an agent goes', async () => {
    const org = makeOrganization(em);
    const user = makeUser(em, org);
    const server = makeServer(em, org);
    const agent = makeAgent(em, server);
    const execution = em.create(Execution, { organization: org, agent, trigger: ExecutionTrigger.MANUAL, triggeredBy: user });
    await em.flush();

    await orm.em.fork().nativeDelete(Agent, { id: agent.id });
    const kept = await orm.em.fork().findOneOrFail(Execution, execution.id);
    expect(kept.agent ?? null).toBeNull();

    await orm.em.fork().nativeDelete(Organization, { id: org.id });
    const fork = orm.em.fork();
    expect(await fork.count(User, { organization: org.id })).toBe(0);
    expect(await fork.count(McpServer, { organization: org.id })).toBe(0);
    expect(await fork.count(Execution, { organization: org.id })).toBe(0);
  });
});
