import { rulesToQuery } from '@casl/ability/extra';
import type { Action, AppAbility, SubjectType } from './abilities';

type Filter = Record<string, unknown>;

/** `{'organization.id': x}` → `{organization: {id: x}}`, the shape MikroORM filters take. */
function nest(conditions: Filter): Filter {
  const out: Filter = {};
  for (const [key, value] of Object.entries(conditions)) {
    const parts = key.split('.');
    let node = out;
    for (const part of parts.slice(0, -1)) node = (node[part] ??= {}) as Filter;
    node[parts[parts.length - 1]!] = value;
  }
  return out;
}

/**
 * Turns the caller's rules for (action, subject) into a MikroORM filter. `null` means no
 * access at all: the caller answers with an empty list and runs no query.
 */
export function accessibleFilter(ability: AppAbility, action: Action, subjectType: SubjectType): Filter | null {
  const query = rulesToQuery(ability, action, subjectType, (rule) => {
    if (!rule.conditions) return {};
    const conditions = nest(rule.conditions as Filter);
    return rule.inverted ? { $not: conditions } : conditions;
  });
  if (query === null) return null;
  const parts: Filter[] = [];
  if (query.$or) parts.push(query.$or.length === 1 ? query.$or[0]! : { $or: query.$or });
  if (query.$and) parts.push(...query.$and);
  if (parts.length === 0) return {};
  return parts.length === 1 ? parts[0]! : { $and: parts };
}
