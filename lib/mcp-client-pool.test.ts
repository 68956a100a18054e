import { McpClientPool } from './mcp-client';
import { startMcpServer, type StreamableTestMcpServer } from '../test/mcp-servers';

describe('McpClientPool idle sweep', () => {
  let slow: StreamableTestMcpServer;
  beforeAll(async () => {
    // Every answer takes longer than the pool's idle time, so connecting does too.
    slow = await startMcpServer({ delayMs: 250 });
  });
  afterAll(() => slow.close());

  it('never closes a connection that is still being opened', async () => {
    const pool = new McpClientPool({ timeoutMs: 5000, idleMs: 30 });
    try {
      const target = { serverId: 'slow-1', url: slow.url, transport: 'streamable-http' as const, token: slow.token };
      await expect(pool.withConnection(target, (c) => c.client.ping())).resolves.toEqual({});
      expect(pool.size).toBe(1);
    } finally {
      await pool.closeAll();
    }
  });
});
