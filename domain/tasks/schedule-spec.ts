import { Cron } from 'croner';

/**
 * The cron dialect of recurring tasks, checked here so that what the API accepts is what
 * Temporal runs and what the preview shows agrees with the schedule's own `nextActionTimes`
 * (compared in tasks.test.ts):
 *
 * - 5 fields `minute hour day-of-month month day-of-week`, or 6 with a leading `second`;
 * - numbers, `*`, lists, ranges and steps, month and weekday names (JAN, MON); `@hourly`,
 *   `@daily`, `@weekly`, `@monthly`, `@yearly`;
 * - not `L`, `W`, `#` or `?`: Temporal's parser refuses some and silently ignores `#`;
 * - not both a day of month and a day of week: classic cron fires on either, Temporal only when
 *   both match, so such an expression would not mean what it says.
 *
 * Temporal reads a 6-field cron as `minute … year`, so a 6-field (seconds) expression goes to
 * it as 7 fields with a `*` year.
 */

export class ScheduleSpecError extends Error {
  constructor(
    readonly field: 'cronExpression' | 'timezone',
    message: string,
  ) {
    super(message);
    this.name = 'ScheduleSpecError';
  }
}

const NICKNAMES: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

const FIELD_NAMES = ['second', 'minute', 'hour', 'day of month', 'month', 'day of week'] as const;
const NAMES = /^(JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC|SUN|MON|TUE|WED|THU|FRI|SAT)$/i;

/** Zones already found valid: building an Intl.DateTimeFormat to check one costs about half a millisecond. */
const knownZones = new Set<string>();

/** A zone the runtime's ICU knows (Temporal's tzdata knows the same IANA names). */
export function assertTimezone(timezone: string): void {
  if (knownZones.has(timezone)) return;
  try {
    new Intl.DateTimeFormat('en', { timeZone: timezone });
  } catch {
    throw new ScheduleSpecError('timezone', `"${timezone}" is not an IANA time zone (such as UTC, Europe/Paris or America/New_York)`);
  }
  // Offsets like +02:00 are accepted by Intl but not by Temporal.
  if (!/^[A-Za-z_]+(?:\/[A-Za-z0-9_+-]+)*$/.test(timezone)) throw new ScheduleSpecError('timezone', `"${timezone}" is not an IANA time zone name (an offset is not a zone)`);
  // Bounded: ICU's names (and their spellings in other letter cases) are finite, but not small.
  if (knownZones.size >= 2000) knownZones.clear();
  knownZones.add(timezone);
}

export interface ParsedCron {
  /** Six fields, seconds first (a 5-field expression gets second 0). */
  fields: string[];
  hasSeconds: boolean;
}

export function parseCron(expression: string): ParsedCron {
  const trimmed = expression.trim();
  const expanded = NICKNAMES[trimmed.toLowerCase()] ?? trimmed;
  if (expanded.startsWith('@')) throw new ScheduleSpecError('cronExpression', `unknown shorthand "${trimmed}"; use ${Object.keys(NICKNAMES).join(', ')} or five fields`);
  const parts = expanded.split(/\s+/).filter(Boolean);
  if (parts.length !== 5 && parts.length !== 6) {
    throw new ScheduleSpecError('cronExpression', `expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, got ${parts.length}`);
  }
  const hasSeconds = parts.length === 6;
  const fields = hasSeconds ? parts : ['0', ...parts];
  fields.forEach((field, i) => {
    for (const token of field.split(/[,\-/]/)) {
      if (token === '*' || /^\d+$/.test(token) || ((i === 4 || i === 5) && NAMES.test(token))) continue;
      throw new ScheduleSpecError('cronExpression', `the ${FIELD_NAMES[i]} field "${field}" is not supported: use numbers, *, lists (a,b), ranges (a-b) and steps (*/n)${i >= 4 ? ' or names' : ''}`);
    }
  });
  if (fields[3] !== '*' && fields[5] !== '*') {
    throw new ScheduleSpecError('cronExpression', 'restrict either the day of month or the day of week, not both (classic cron fires on either, Temporal only when both match)');
  }
  return { fields, hasSeconds };
}

/** The expression as Temporal's `cronExpressions` reads it. */
export function temporalCron(expression: string): string {
  const { fields, hasSeconds } = parseCron(expression);
  return hasSeconds ? [...fields, '*'].join(' ') : fields.slice(1).join(' ');
}

/**
 * The next `count` times the expression fires in `timezone` after `from`; a 400-worthy
 * `ScheduleSpecError` names the field that is wrong, including an expression that never fires.
 */
export function nextCronTimes(expression: string, timezone: string, count = 5, from = new Date()): Date[] {
  assertTimezone(timezone);
  const { fields } = parseCron(expression);
  let cron: Cron;
  try {
    cron = new Cron(fields.join(' '), { timezone, paused: true, mode: '6-part', domAndDow: true });
  } catch (error) {
    throw new ScheduleSpecError('cronExpression', `invalid expression: ${(error as Error).message}`);
  }
  const times = cron.nextRuns(count, from);
  if (times.length === 0) throw new ScheduleSpecError('cronExpression', 'the expression never fires (such as the 31st of February)');
  return times;
}
