/**
 * PostgreSQL stores no NUL character in `text` or `jsonb`, and no unpaired UTF-16 surrogate in
 * `jsonb`: either makes the whole INSERT fail. Text from outside (an MCP server's output, tool
 * arguments, error texts) goes through here before it is stored; the characters are dropped.
 */
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

export function storableText(text: string): string {
  return text.replace(UNSTORABLE, '');
}

/** `value` with every string in it (object keys too) made storable; other values as they are. */
export function storable<T>(value: T): T {
  if (typeof value === 'string') return storableText(value) as T;
  if (Array.isArray(value)) return value.map((item: unknown) => storable(item)) as T;
  if (value !== null && typeof value === 'object' && [Object.prototype, null].includes(Object.getPrototypeOf(value))) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [storableText(key), storable(item)])) as T;
  }
  return value;
}
