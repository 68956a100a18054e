import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { ApplicationFailure } from '@temporalio/activity';
import pino from 'pino';
import { McpClientPool } from '../lib/mcp-pool';
import { httpFor, registerAccount, type Account, type Http } from '../test/api';
import { registerHost } from '../test/fleet';
import { createTestContext, type TestContext } from '../test/harness';
import type { AgentHost } from '../host/server';
import { ServerCallFailed, serverGateway } from './server-gateway';

describe('the server gateway', () => {
  let ctx: TestContext;
  let http: Http;
  let admin: Account;
  let host: AgentHost;
  let serverId: string;
  const pool = () => {
    const mcp = new McpClientPool({ timeoutMs: ctx.config.mcp.timeoutMs, logger: ctx.logger });
    pools.push(mcp);
    return mcp;
  };
  const pools: McpClientPool[] = [];

  beforeAll(async () => {
    ctx = await createTestContext();
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Gateway Org');
    ({ host, serverId } = await registerHost(http, admin));
  });
  afterAll(async () => {
    for (const mcp of pools) await mcp.closeAll();
    await host?.close();
    await ctx?.close();
  });

  it('connects to a server by id with its decrypted token, and cleans what the call returns', async () => {
    const gateway = serverGateway({ ...ctx, mcp: pool() });
    const answer = await gateway.withServer(serverId, async ({ server, connection, since }) => {
      await connection.client.ping();
      return { id: server.id, name: `${connection.serverInfo?.name}\u0000`, waited: performance.now() - since };
    });
    expect(answer).toMatchObject({ id: serverId, name: 'mcp-fleet-agent-host' });
    expect(answer.waited).toBeGreaterThanOrEqual(0);
  });

  it('refuses a server that does not exist, without retries', async () => {
    const gateway = serverGateway({ ...ctx, mcp: pool() });
    const missing = randomUUID();
    const refused = gateway.withServer(missing, async () => 'never');
    await expect(refused).rejects.toBeInstanceOf(ApplicationFailure);
    await expect(refused).rejects.toMatchObject({
      type: 'ServerNotFound',
      nonRetryable: true,
      message: `server ${missing} does not exist`,
    });
  });

  it('says why in one sentence: a URL the policy refuses (logged in full), a token it cannot decrypt, a server that is not there', async () => {
    let logs = '';
    const logger = pino({ level: 'info' }, new Writable({ write: (chunk, _enc, done) => ((logs += chunk.toString()), done()) }));
    const local = await http
      .post('/api/servers')
      .set('Authorization', `Bearer ${admin.accessToken}`)
      .send({ name: `local-${randomUUID().slice(0, 6)}`, url: host.url.replace('127.0.0.1', 'localhost'), masterToken: host.token })
      .expect(201);
    const denied = serverGateway({
      ...ctx,
      logger,
      config: { ...ctx.config, mcp: { ...ctx.config.mcp, urlDenylist: '127.0.0.0/8, ::1' } },
      mcp: pool(),
    });
    const failure = async (gateway: ReturnType<typeof serverGateway>, id: string) => {
      const error = await gateway.withServer(id, async () => 'never').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ServerCallFailed);
      return (error as Error).message;
    };
    expect(await failure(denied, local.body.id)).toBe(
      'refused to connect: URL host localhost resolves to an address that is refused by the deny list',
    );
    expect(logs).toMatch(
      /"detail":"URL host localhost resolves to (127\.0\.0\.1|::1), which is refused by the deny list \((127\.0\.0\.0\/8|::1)\)","msg":"server URL refused by the URL policy"/,
    );

    const keyless = serverGateway({
      ...ctx,
      config: { ...ctx.config, encryptionKeys: [{ id: 'another', key: Buffer.alloc(32, 7) }] },
      mcp: pool(),
    });
    expect(await failure(keyless, serverId)).toMatch(/^cannot decrypt the master token: /);

    const gone = await registerHost(http, admin);
    await gone.host.close();
    expect(await failure(serverGateway({ ...ctx, mcp: pool() }), gone.serverId)).toMatch(/^connection refused at 127\.0\.0\.1:\d+$/);
  });
});
