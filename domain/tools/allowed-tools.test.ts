import { AgentToolPermission, ServerToolStatus, ToolDefinition, type Agent } from '../../entities';
import { makeAgent, makeOrganization, makeServer } from '../../test/factories';
import { createTestContext, type TestContext } from '../../test/harness';
import { builtinTool, catalogEntry, setServerTool } from '../../test/tool-fixtures';
import { allowedToolsFor, assertToolCallAllowed } from './allowed-tools';

describe('allowedToolsFor and assertToolCallAllowed', () => {
  let ctx: TestContext;
  let agent: Agent;
  let git: ToolDefinition;
  let docker: ToolDefinition;
  let pending: ToolDefinition;
  let denied: ToolDefinition;
  const em = () => ctx.orm.em.fork();

  beforeAll(async () => {
    ctx = await createTestContext();
    const setup = em();
    const org = makeOrganization(setup);
    const server = makeServer(setup, org);
    // The server's own tools/list offers `echo-mcp`: usable without an install.
    server.toolsSnapshot = [{ name: 'echo-mcp', description: 'echoes' } as never];
    agent = makeAgent(setup, server);
    await setup.flush();
    [git, docker, pending, denied] = await Promise.all([builtinTool(em()), builtinTool(em()), builtinTool(em()), builtinTool(em())]);
    const echo = await builtinTool(em(), { name: 'echo-mcp' });
    for (const tool of [git, docker, denied]) await setServerTool(em(), server.id, tool.id, ServerToolStatus.INSTALLED);
    await setServerTool(em(), server.id, pending.id, ServerToolStatus.INSTALLING);
    const grant = (tool: ToolDefinition, fields: Partial<AgentToolPermission> = {}) =>
      setup.create(AgentToolPermission, { organization: org, agent, tool: setup.getReference(ToolDefinition, tool.id), ...fields });
    grant(git, { allowedCommands: ['status', 'remote'], blockedCommands: ['remote add'] });
    grant(docker, { requiresApproval: true });
    grant(pending);
    grant(denied, { canUse: false });
    grant(echo);
    await setup.flush();
  });
  afterAll(async () => {
    await ctx?.close();
  });

  it('lists the granted tools available on the agent’s server, with their commands and approval gates', async () => {
    const tools = await allowedToolsFor(em(), agent.id);
    expect(tools).toEqual(
      [
        { name: git.name, allowedCommands: ['status', 'remote'], blockedCommands: ['remote add'] },
        { name: docker.name, allowedCommands: [], blockedCommands: [], requiresApproval: true },
        { name: 'echo-mcp', allowedCommands: [], blockedCommands: [] },
      ].sort((a, b) => a.name.localeCompare(b.name)),
    );
  });

  it('allows a granted, available tool and the commands its grant allows', async () => {
    await expect(assertToolCallAllowed(em(), agent.id, docker.name)).resolves.toBeUndefined();
    await expect(assertToolCallAllowed(em(), agent.id, 'echo-mcp')).resolves.toBeUndefined();
    await expect(assertToolCallAllowed(em(), agent.id, git.name, 'remote -v')).resolves.toBeUndefined();
    await expect(assertToolCallAllowed(em(), agent.id, git.name, 'status --short')).resolves.toBeUndefined();
  });

  it.each([
    ['a tool never granted', () => ['never-granted-tool'], /is not granted the tool never-granted-tool/],
    ['a grant with canUse false', () => [denied.name], /is not granted the tool/],
    ['a tool not installed yet', () => [pending.name], /is not installed on agent .*'s server: its grant waits for the install/],
    ['a blocked command', () => [git.name, 'remote add origin x'], /is blocked for this agent \(blocked command "remote add"\)/],
    ['a command outside the allowed ones', () => [git.name, 'push'], /is not among the agent's allowed commands/],
    ['the whole tool when only some commands are allowed', () => [git.name], /is not among the agent's allowed commands/],
    ['an unreadable command line', () => [git.name, 'status "oops'], /not a valid command line/],
  ])('refuses %s with tool_not_allowed and the reason', async (_what, args, reason) => {
    const [toolName, command] = args();
    const refusal = assertToolCallAllowed(em(), agent.id, toolName!, command);
    await expect(refusal).rejects.toMatchObject({
      name: 'ToolCallRefused',
      status: 403,
      code: 'tool_not_allowed',
      details: { agentId: agent.id, toolName },
    });
    await expect(refusal).rejects.toThrow(reason);
  });

  it('never sends nor calls a host contract tool, even one granted and available before the names were reserved', async () => {
    const setup = em();
    const org = makeOrganization(setup);
    const server = makeServer(setup, org);
    // The host's own tools/list offers check_tool: a grant of that name would be available.
    server.toolsSnapshot = [{ name: 'check_tool' } as never, { name: 'install_tool' } as never];
    const holder = makeAgent(setup, server);
    await setup.flush();
    const commands = { installCommand: 'true', uninstallCommand: 'true', versionCommand: 'true' };
    const rows = [
      await catalogEntry(ctx.orm, org.id, commands, { name: 'check_tool' }),
      await catalogEntry(ctx.orm, org.id, commands, { name: 'Install_Tool' }),
    ];
    await setServerTool(em(), server.id, rows[1]!.id, ServerToolStatus.INSTALLED);
    for (const tool of rows)
      setup.create(AgentToolPermission, { organization: org, agent: holder, tool: setup.getReference(ToolDefinition, tool.id) });
    await setup.flush();

    expect(await allowedToolsFor(em(), holder.id)).toEqual([]);
    for (const name of ['check_tool', 'Install_Tool', 'execute_prompt']) {
      const refusal = assertToolCallAllowed(em(), holder.id, name);
      await expect(refusal).rejects.toMatchObject({
        name: 'ToolCallRefused',
        code: 'tool_not_allowed',
        details: { agentId: holder.id, toolName: name },
      });
      await expect(refusal).rejects.toThrow(
        `${name} is a tool of the host contract, called only by mcp-fleet itself; it cannot be called by a task`,
      );
    }
  });

  it('reads a direct call of git as the host does: the command after git’s global options, and what changes what runs must be named', async () => {
    const setup = em();
    const org = makeOrganization(setup);
    const server = makeServer(setup, org);
    const other = makeAgent(setup, server);
    await setup.flush();
    // The organisation's own entry named git: a built-in one would change what other test files find.
    const git = await catalogEntry(
      ctx.orm,
      org.id,
      { installCommand: 'true', uninstallCommand: 'true', versionCommand: 'git --version' },
      { name: 'git' },
    );
    await setServerTool(em(), server.id, git.id, ServerToolStatus.INSTALLED);
    setup.create(AgentToolPermission, {
      organization: org,
      agent: other,
      tool: setup.getReference(ToolDefinition, git.id),
      allowedCommands: ['-C'],
      blockedCommands: ['config', 'ls-remote'],
    });
    await setup.flush();
    await expect(assertToolCallAllowed(em(), other.id, 'git', '-C sub status')).resolves.toBeUndefined();
    await expect(assertToolCallAllowed(em(), other.id, 'git', '-c a.b=c config --global alias.zz "!touch x"')).rejects.toThrow(
      'is blocked for this agent (blocked command "config")',
    );
    await expect(assertToolCallAllowed(em(), other.id, 'git', '-C . ls-remote --upload-pack=x .')).rejects.toThrow(
      '(blocked command "ls-remote")',
    );
    await expect(assertToolCallAllowed(em(), other.id, 'git', 'zz')).rejects.toThrow(
      '"git zz" is refused: zz is not one of git’s own commands',
    );
    await expect(assertToolCallAllowed(em(), other.id, 'git', 'fetch --upload-pack=x origin')).rejects.toMatchObject({
      code: 'tool_not_allowed',
      message: expect.stringContaining('must name it ("--upload-pack")'),
    });
  });
});
