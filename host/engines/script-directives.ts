/**
 * The script engine's directives (script.ts): what a prompt's `[steps:N]`, `[delay:MS]`,
 * `[fail]`, `[throw]`, `[hang]`, `[ignore-cancel]`, `[json]`, `[spec]{...}`, `[bytes:N]`,
 * `[run:COMMAND]`, `[ask:TEXT]`, `[ask-bool:TEXT]` and `[delegate:AGENT:PROMPT]` ask for, read
 * out of it, and the prompt's text without them. Which script they choose, and how it plays, is
 * script.ts's.
 */

/** What a prompt's directives ask the script engine for (parseDirectives). */
export interface PromptDirectives {
  /** The prompt with every recognised directive (and the `[spec]` JSON) removed. */
  text: string;
  steps?: number;
  delayMs?: number;
  bytes?: number;
  fail: boolean;
  throw: boolean;
  hang: boolean;
  ignoreCancel: boolean;
  json: boolean;
  spec?: Record<string, unknown>;
  /** The command lines of `[run:...]`, in prompt order. */
  runs: string[];
  /** The questions of `[ask:TEXT]` (a text answer) and `[ask-bool:TEXT]` (yes or no), in prompt order; absent when there are none. */
  asks?: { text: string; kind: 'text' | 'bool' }[];
  /** The `[delegate:AGENT:PROMPT]` directives, in prompt order; absent when there are none. */
  delegations?: { agent: string; prompt: string }[];
}

/** The JSON object starting at the first non-blank character from `from`, if there is one. */
function readJsonObject(text: string, from: number): { value: Record<string, unknown>; end: number } | undefined {
  let start = from;
  while (start < text.length && /\s/.test(text[start]!)) start++;
  if (text[start] !== '{') return undefined;
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (let i = start; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (ch === '\\') escaped = true;
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') inString = true;
    else if (ch === '{') depth++;
    else if (ch === '}') {
      depth--;
      if (depth === 0) {
        try {
          const value: unknown = JSON.parse(text.slice(start, i + 1));
          if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
            return { value: value as Record<string, unknown>, end: i + 1 };
          }
        } catch {
          // Not JSON after all: the text stays part of the prompt.
        }
        return undefined;
      }
    }
  }
  return undefined;
}

const DELEGATE_OPENING = '[delegate:';

/**
 * Takes the `[delegate:AGENT:PROMPT]` directives out of `text`. They go first, and their brackets
 * are matched, so that a child's prompt may hold directives of its own (`[delegate:w1:hi [hang]]`,
 * or a delegation one level down): everything up to the matching `]` is the child's. The agent
 * is up to the first `:`. An opening never closed stays part of the text.
 */
function takeDelegations(text: string): { text: string; delegations: { agent: string; prompt: string }[] } {
  const delegations: { agent: string; prompt: string }[] = [];
  let rest = '';
  let from = 0;
  for (let at = text.indexOf(DELEGATE_OPENING); at >= 0; at = text.indexOf(DELEGATE_OPENING, from)) {
    let depth = 0;
    let end = -1;
    for (let i = at; i < text.length && end < 0; i++) {
      if (text[i] === '[') depth++;
      else if (text[i] === ']' && --depth === 0) end = i;
    }
    const body = end < 0 ? '' : text.slice(at + DELEGATE_OPENING.length, end);
    const colon = body.indexOf(':');
    if (colon <= 0 || !body.slice(colon + 1).trim()) {
      // Not a delegation (unclosed, no agent, no prompt): kept as text.
      rest += text.slice(from, at + 1);
      from = at + 1;
      continue;
    }
    delegations.push({ agent: body.slice(0, colon).trim(), prompt: body.slice(colon + 1).trim() });
    // The directive goes with the one space before it, as the others do.
    rest += text.slice(from, at).replace(/[ \t]$/, '');
    from = end + 1;
  }
  return { text: rest + text.slice(from), delegations };
}

/** Reads the directives out of a prompt: what the script engine is to do, and the text it echoes. */
export function parseDirectives(prompt: string): PromptDirectives {
  const taken = takeDelegations(prompt);
  let text = taken.text;
  let spec: Record<string, unknown> | undefined;
  // The spec goes first so that brackets inside its JSON strings are never read as directives.
  const specAt = text.indexOf('[spec]');
  if (specAt >= 0) {
    const json = readJsonObject(text, specAt + '[spec]'.length);
    if (json) {
      spec = json.value;
      text = `${text.slice(0, specAt).replace(/[ \t]$/, '')}${text.slice(json.end)}`;
    }
  }
  const found: Omit<PromptDirectives, 'text'> = {
    fail: false,
    throw: false,
    hang: false,
    ignoreCancel: false,
    json: false,
    spec,
    runs: [],
    ...(taken.delegations.length ? { delegations: taken.delegations } : {}),
  };
  text = text.replace(/[ \t]?\[run:([^\]\n]+)\]/g, (_match, command: string) => {
    found.runs.push(command.trim());
    return '';
  });
  text = text.replace(/[ \t]?\[ask(-bool)?:([^\]\n]+)\]/g, (_match, bool: string | undefined, question: string) => {
    (found.asks ??= []).push({ text: question.trim(), kind: bool ? 'bool' : 'text' });
    return '';
  });
  // A directive goes with the one space before it; the rest of the prompt keeps its spacing.
  text = text.replace(
    /[ \t]?(?:\[(steps|delay|bytes):(\d+)\]|\[(fail|throw|hang|ignore-cancel|json)\])/g,
    (_match, key?: string, value?: string, flag?: string) => {
      if (key === 'steps') found.steps = Number(value);
      else if (key === 'delay') found.delayMs = Number(value);
      else if (key === 'bytes') found.bytes = Number(value);
      else if (flag === 'fail') found.fail = true;
      else if (flag === 'throw') found.throw = true;
      else if (flag === 'hang') found.hang = true;
      else if (flag === 'ignore-cancel') found.ignoreCancel = true;
      else if (flag === 'json') found.json = true;
      return '';
    },
  );
  return { ...found, text: text.trim() };
}
