import { compose } from './composition';

describe('compose', () => {
  it('closes the parts last opened first, tries them all, and rethrows the first failure', async () => {
    const closed: string[] = [];
    const { deps, close } = await compose(async (closing) => {
      closing(() => closed.push('orm'));
      closing(() => {
        closed.push('connection');
        throw new Error('connection would not close');
      });
      closing(async () => void closed.push('listener'));
      return 'deps';
    });
    expect(deps).toBe('deps');
    await expect(close()).rejects.toThrow('connection would not close');
    expect(closed).toEqual(['listener', 'connection', 'orm']);
    await close();
    expect(closed).toHaveLength(3);
  });

  it('closes what was opened when building fails, then passes the error on', async () => {
    const closed: string[] = [];
    const failing = compose(async (closing) => {
      closing(() => closed.push('orm'));
      throw new Error('temporal unreachable');
    });
    await expect(failing).rejects.toThrow('temporal unreachable');
    expect(closed).toEqual(['orm']);
  });
});
