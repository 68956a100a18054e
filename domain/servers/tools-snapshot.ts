import { createHash } from 'node:crypto';

export interface ToolSnapshot {
  name: string;
  description?: string;
  inputSchema?: unknown;
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value as Record<string, unknown>)
        .sort()
        .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

function toolDigest(tool: ToolSnapshot): string {
  return JSON.stringify(canonical({ name: tool.name, description: tool.description ?? null, inputSchema: tool.inputSchema ?? null }));
}

/** Order-independent hash of what the server offers (names, descriptions, input schemas). */
export function toolsHash(tools: readonly ToolSnapshot[]): string {
  const digests = tools.map(toolDigest).sort();
  return createHash('sha256').update(digests.join('\n')).digest('hex');
}

export interface ToolsDiff {
  added: string[];
  removed: string[];
  changed: string[];
}

export function diffTools(before: readonly ToolSnapshot[], after: readonly ToolSnapshot[]): ToolsDiff {
  const old = new Map(before.map((t) => [t.name, toolDigest(t)]));
  const now = new Map(after.map((t) => [t.name, toolDigest(t)]));
  return {
    added: [...now.keys()].filter((n) => !old.has(n)).sort(),
    removed: [...old.keys()].filter((n) => !now.has(n)).sort(),
    changed: [...now.keys()].filter((n) => old.has(n) && old.get(n) !== now.get(n)).sort(),
  };
}
