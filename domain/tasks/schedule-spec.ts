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

/** The spelling of an IANA zone name; an offset (+02:00), which Intl takes and Temporal does not, is not one. */
export const ZONE_NAME = /^[A-Za-z_]+(?:\/[A-Za-z0-9_+-]+)*$/;

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
  if (!ZONE_NAME.test(timezone))
    throw new ScheduleSpecError('timezone', `"${timezone}" is not an IANA time zone name (an offset is not a zone)`);
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
  if (expanded.startsWith('@'))
    throw new ScheduleSpecError(
      'cronExpression',
      `unknown shorthand "${trimmed}"; use ${Object.keys(NICKNAMES).join(', ')} or five fields`,
    );
  const parts = expanded.split(/\s+/).filter(Boolean);
  if (parts.length !== 5 && parts.length !== 6) {
    throw new ScheduleSpecError(
      'cronExpression',
      `expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, got ${parts.length}`,
    );
  }
  const hasSeconds = parts.length === 6;
  const fields = hasSeconds ? parts : ['0', ...parts];
  fields.forEach((field, i) => {
    for (const token of field.split(/[,\-/]/)) {
      if (token === '*' || /^\d+$/.test(token) || ((i === 4 || i === 5) && NAMES.test(token))) continue;
      throw new ScheduleSpecError(
        'cronExpression',
        `the ${FIELD_NAMES[i]} field "${field}" is not supported: use numbers, *, lists (a,b), ranges (a-b) and steps (*/n)${i >= 4 ? ' or names' : ''}`,
      );
    }
  });
  if (fields[3] !== '*' && fields[5] !== '*') {
    throw new ScheduleSpecError(
      'cronExpression',
      'restrict either the day of month or the day of week, not both (classic cron fires on either, Temporal only when both match)',
    );
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

/** Where an expression fires closest together, below a floor: the gap, and between which times. */
export interface CloseFires {
  gapSeconds: number;
  /** The two times, as a person reads them (wall clock, or the instants of a daylight-saving change). */
  between: string;
}

const FIELD_BOUNDS: readonly [number, number][] = [
  [0, 59],
  [0, 59],
  [0, 23],
  [1, 31],
  [1, 12],
  [0, 7],
];
const MONTH_NAMES = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const DAY_NAMES = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

function fieldValue(token: string, i: number): number {
  const upper = token.toUpperCase();
  if (i === 4 && MONTH_NAMES.includes(upper)) return MONTH_NAMES.indexOf(upper) + 1;
  if (i === 5 && DAY_NAMES.includes(upper)) return DAY_NAMES.indexOf(upper);
  return Number(token);
}

/** The values a field of a parsed (and croner-checked) expression matches, as croner reads them: `a/n` runs from a to the field's end. */
function fieldValues(field: string, i: number): Set<number> {
  const [min, max] = FIELD_BOUNDS[i]!;
  const values = new Set<number>();
  for (const part of field.split(',')) {
    const [range, step] = part.split('/') as [string, string | undefined];
    const [from, to] =
      range === '*'
        ? [min, max]
        : range.includes('-')
          ? range.split('-').map((t) => fieldValue(t, i))
          : [fieldValue(range, i), step ? max : fieldValue(range, i)];
    for (let v = from!; v <= to!; v += step ? Number(step) : 1) values.add(i === 5 ? v % 7 : v);
  }
  return values;
}

/** Days in each month, February at its longest (it is 28 or 29 days long). */
const MONTH_DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Whether the expression fires on two consecutive days somewhere in the calendar. */
function firesOnConsecutiveDays(fields: string[]): boolean {
  const [dom, month, dow] = [fieldValues(fields[3]!, 3), fieldValues(fields[4]!, 4), fieldValues(fields[5]!, 5)];
  // The dialect restricts at most one of the two day fields (parseCron).
  if (fields[5] !== '*') return [...dow].some((day) => dow.has((day + 1) % 7));
  for (const m of month) {
    if ([...dom].some((day) => dom.has(day + 1) && day + 1 <= MONTH_DAYS[m - 1]!)) return true;
    const lastDays = m === 2 ? [28, 29] : [MONTH_DAYS[m - 1]!];
    if (dom.has(1) && month.has((m % 12) + 1) && lastDays.some((day) => dom.has(day))) return true;
  }
  return false;
}

function clock(secondOfDay: number): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(Math.floor(secondOfDay / 3600))}:${pad(Math.floor(secondOfDay / 60) % 60)}:${pad(secondOfDay % 60)}`;
}

/** The zone's UTC offset at `at`, in minutes. */
function offsetMinutes(format: Intl.DateTimeFormat, at: number): number {
  const name = format.formatToParts(at).find((p) => p.type === 'timeZoneName')?.value ?? 'GMT';
  const match = /GMT([+-])(\d{2}):(\d{2})/.exec(name);
  return match ? (match[1] === '-' ? -1 : 1) * (Number(match[2]) * 60 + Number(match[3])) : 0;
}

interface OffsetChange {
  at: Date;
  shiftMinutes: number;
}

/**
 * How far ahead daylight-saving changes are looked for: the calendar's cycle of 28 years (10,227
 * days, until 2100), after which every date has met every weekday the same way again. A change
 * falls on a rule's day ("the first Sunday of October"), so an expression limited to some days
 * of the month meets it only in some years: 1 October 2028 is such a Sunday, 2027's is not.
 */
const CHANGES_AHEAD_MS = 10_227 * 86_400_000;

/** Per zone, the changes found from `since` on: good for a day (the cycle ahead moves by a day). */
const zoneChanges = new Map<string, { since: number; changes: OffsetChange[] }>();

/** The instants within the calendar's cycle after `from` where the zone's offset changes (daylight saving), to the second, with the change in minutes, in order. */
export function offsetChanges(timezone: string, from: Date): OffsetChange[] {
  const known = zoneChanges.get(timezone);
  if (known && known.since <= from.getTime() && from.getTime() - known.since < 86_400_000) return known.changes.filter((c) => c.at > from);
  const changes = findOffsetChanges(timezone, from);
  if (zoneChanges.size >= 2000) zoneChanges.clear();
  zoneChanges.set(timezone, { since: from.getTime(), changes });
  return changes;
}

/** Looked for over the cycle and two days, so that an answer kept for a day still covers a whole cycle ahead (about 60 ms a zone). */
function findOffsetChanges(timezone: string, from: Date): OffsetChange[] {
  const format = new Intl.DateTimeFormat('en-US', { timeZone: timezone, timeZoneName: 'longOffset' });
  const changes: OffsetChange[] = [];
  // Zones change their offset at most a few times a year, weeks apart.
  const step = 12 * 3600_000;
  let before = from.getTime();
  let offset = offsetMinutes(format, before);
  for (let after = before + step; after <= from.getTime() + CHANGES_AHEAD_MS + 2 * 86_400_000; before = after, after += step) {
    const next = offsetMinutes(format, after);
    if (next === offset) continue;
    // The change lies in (before, after]: narrowed to the second.
    let [lo, hi] = [before, after];
    while (hi - lo > 1000) {
      const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
      if (offsetMinutes(format, mid) === offset) lo = mid;
      else hi = mid;
    }
    changes.push({ at: new Date(hi), shiftMinutes: next - offset });
    offset = next;
  }
  return changes;
}

/**
 * The closest two consecutive occurrences of the expression in `timezone`, when they are less
 * than `minSeconds` apart; null when every two are at least that far apart. Exact, without
 * walking every occurrence of the year:
 *
 * - on an ordinary day the expression fires at the same wall-clock times (its second, minute
 *   and hour fields), so the gaps are those between them, and, when it fires on two
 *   consecutive days (its day fields, each month's length), the one from the last of a day to
 *   the first of the next;
 * - around each daylight-saving change of the next 28 years (the calendar's cycle: an
 *   expression limited to some days meets a change on "the first Sunday" only in the years
 *   those days fall on it), where an hour is skipped or repeated, croner itself (the library
 *   the previews use) lists the occurrences, and every gap among them is measured: any two
 *   occurrences less than `minSeconds` apart across the change lie within `minSeconds` plus
 *   the shift of it.
 *
 * Gaps of a day or more need no daylight-saving window only because `minSeconds` stays under
 * a day (config); a gap across a change is measured whatever its length.
 */
export function cronGapBelow(expression: string, timezone: string, minSeconds: number, from = new Date()): CloseFires | null {
  // Cron counts whole seconds: no two occurrences are closer than one.
  if (minSeconds <= 1) return null;
  // A day's answer is the next day's, unless a daylight-saving change came into the cycle ahead
  // meanwhile; tasks mostly repeat a few expressions, and walking a change costs up to 0.1 s.
  const key = `${minSeconds} ${timezone} ${expression}`;
  const cached = closeFires.get(key);
  if (cached && cached.until > from.getTime() && cached.since <= from.getTime()) return cached.found;
  const found = computeGapBelow(expression, timezone, minSeconds, from);
  if (closeFires.size >= CLOSE_FIRES_MAX) closeFires.clear();
  closeFires.set(key, { found, since: from.getTime(), until: from.getTime() + 86_400_000 });
  return found;
}

const closeFires = new Map<string, { found: CloseFires | null; since: number; until: number }>();
const CLOSE_FIRES_MAX = 1000;

function computeGapBelow(expression: string, timezone: string, minSeconds: number, from: Date): CloseFires | null {
  nextCronTimes(expression, timezone, 1, from);
  const { fields } = parseCron(expression);
  const [seconds, minutes, hours] = [0, 1, 2].map((i) => [...fieldValues(fields[i]!, i)].sort((a, b) => a - b));
  const times: number[] = [];
  for (const h of hours!) for (const m of minutes!) for (const s of seconds!) times.push(h * 3600 + m * 60 + s);
  for (let i = 1; i < times.length; i++) {
    const gap = times[i]! - times[i - 1]!;
    if (gap < minSeconds) return { gapSeconds: gap, between: `${clock(times[i - 1]!)} and ${clock(times[i]!)}` };
  }
  const overnight = 86_400 - times[times.length - 1]! + times[0]!;
  if (overnight < minSeconds && firesOnConsecutiveDays(fields))
    return { gapSeconds: overnight, between: `${clock(times[times.length - 1]!)} and ${clock(times[0]!)} the next day` };

  const cron = new Cron(fields.join(' '), { timezone, paused: true, mode: '6-part', domAndDow: true });
  for (const change of offsetChanges(timezone, from)) {
    const reach = (minSeconds + Math.abs(change.shiftMinutes) * 60) * 1000;
    const end = change.at.getTime() + reach;
    let previous = cron.nextRun(new Date(change.at.getTime() - reach - 1));
    while (previous && previous.getTime() <= end) {
      const next = cron.nextRun(previous);
      if (!next || next.getTime() > end) break;
      const gap = (next.getTime() - previous.getTime()) / 1000;
      if (gap < minSeconds)
        return {
          gapSeconds: gap,
          between: `${previous.toISOString()} and ${next.toISOString()} (the daylight-saving change in ${timezone})`,
        };
      previous = next;
    }
  }
  return null;
}
