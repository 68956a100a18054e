import { McpClientPool } from './mcp-client';
import { startMcpServer, type StreamableTestMcpServer } from '../test/mcp-servers';

describe('McpClientPool', () => {
  let server: StreamableTestMcpServer;
  beforeAll(async () => {
    server = await startMcpServer();
  });
  afterAll(() => server.close());

  const target = () => ({ serverId: 'srv-1', url: server.url, transport: 'streamable-http' as const, token: server.token });

  it('reuses one connection per server and closes it once idle', async () => {
    const pool = new McpClientPool({ timeoutMs: 2000, idleMs: 100 });
    try {
      await pool.withConnection(target(), (c) => c.client.ping());
      const requests = server.requests;
      await pool.withConnection(target(), (c) => c.client.ping());
      expect(server.requests).toBe(requests + 1);
      expect(pool.size).toBe(1);
      await new Promise((r) => setTimeout(r, 400));
      expect(pool.size).toBe(0);
    } finally {
      await pool.closeAll();
    }
  });

  it('never closes a connection while a call is using it', async () => {
    const pool = new McpClientPool({ timeoutMs: 5000, idleMs: 50 });
    try {
      await pool.withConnection(target(), async (c) => {
        await new Promise((r) => setTimeout(r, 300));
        await c.client.ping();
      });
      expect(pool.size).toBe(1);
    } finally {
      await pool.closeAll();
    }
  });

  it('opens a new connection when the token changes', async () => {
    const pool = new McpClientPool({ timeoutMs: 2000 });
    try {
      await pool.withConnection(target(), (c) => c.client.ping());
      await expect(pool.withConnection({ ...target(), token: 'wrong-token' }, (c) => c.client.ping())).rejects.toThrow('the server rejected the master token (HTTP 401)');
      expect(pool.size).toBe(0);
    } finally {
      await pool.closeAll();
    }
  });
});
