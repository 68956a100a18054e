import { Cron } from 'croner';
import fc from 'fast-check';
import { cronGapBelow, offsetChanges, parseCron } from './schedule-spec';

/** Every occurrence in [from, to) as croner lists them: the slow, obvious answer. */
function smallestGapByWalking(expression: string, timezone: string, from: Date, to: Date): number {
  const cron = new Cron(parseCron(expression).fields.join(' '), { timezone, paused: true, mode: '6-part', domAndDow: true });
  let smallest = Infinity;
  for (let previous = cron.nextRun(from); previous && previous < to;) {
    const next = cron.nextRun(previous);
    if (!next || next >= to) break;
    smallest = Math.min(smallest, (next.getTime() - previous.getTime()) / 1000);
    previous = next;
  }
  return smallest;
}

describe('the smallest gap between occurrences of a cron expression (the minimum interval of recurring tasks)', () => {
  const from = new Date('2027-06-01T00:00:00Z');

  it.each([
    ['* * * * * *', 'UTC', 60, { gapSeconds: 1, between: '00:00:00 and 00:00:01' }],
    ['*/30 * * * * *', 'UTC', 60, { gapSeconds: 30, between: '00:00:00 and 00:00:30' }],
    ['* * * * *', 'UTC', 60, null],
    ['*/5 * * * *', 'Europe/Paris', 300, null],
    ['0,30 9 * * *', 'UTC', 3600, { gapSeconds: 1800, between: '09:00:00 and 09:30:00' }],
    // From the last of a day to the first of the next one.
    ['0,59 0,23 * * *', 'UTC', 120, { gapSeconds: 60, between: '23:59:00 and 00:00:00 the next day' }],
    ['0,59 0,23 * * MON,TUE', 'UTC', 120, { gapSeconds: 60, between: '23:59:00 and 00:00:00 the next day' }],
    ['0,59 0,23 * * SAT,SUN', 'UTC', 120, { gapSeconds: 60, between: '23:59:00 and 00:00:00 the next day' }],
    ['0,59 0,23 * * MON,WED', 'UTC', 120, null],
    ['0,59 0,23 31 * *', 'UTC', 120, null],
    ['0,59 0,23 30,31 * *', 'UTC', 120, { gapSeconds: 60, between: '23:59:00 and 00:00:00 the next day' }],
    ['0,59 0,23 1,31 * *', 'UTC', 120, { gapSeconds: 60, between: '23:59:00 and 00:00:00 the next day' }],
    // 31 January → 1 February, but February is not in the list: 1 March follows 28 or 29 February only.
    ['0,59 0,23 1,31 1,3 *', 'UTC', 120, null],
    ['0,59 0,23 1,28 2,3 *', 'UTC', 120, { gapSeconds: 60, between: '23:59:00 and 00:00:00 the next day' }],
    ['0,59 0,23 1,29 2,3 *', 'UTC', 120, { gapSeconds: 60, between: '23:59:00 and 00:00:00 the next day' }],
    // 2 hours apart on the wall clock, 1 hour apart in real time when 02:00 becomes 03:00.
    ['0 1,3 * * *', 'UTC', 7200, null],
    [
      '0 1,3 * * *',
      'Europe/Paris',
      7200,
      { gapSeconds: 3600, between: '2028-03-26T00:00:00.000Z and 2028-03-26T01:00:00.000Z (the daylight-saving change in Europe/Paris)' },
    ],
    ['0 1,3 * * *', 'Europe/Paris', 3600, null],
    // Lord Howe moves its clocks by 30 minutes at 02:00 on the first Sunday of October: a day of
    // the month meets it only in the years it is that Sunday (1 October 2028, not 2027).
    [
      '0 30 1-3 28,1 * *',
      'Australia/Lord_Howe',
      3600,
      {
        gapSeconds: 1800,
        between: '2028-09-30T15:00:00.000Z and 2028-09-30T15:30:00.000Z (the daylight-saving change in Australia/Lord_Howe)',
      },
    ],
  ])('%s in %s under %i s: %j', (expression, timezone, minSeconds, expected) => {
    expect(cronGapBelow(expression, timezone, minSeconds, from)).toEqual(expected);
  });

  it('finds the daylight-saving changes of the coming year to the second, half-hour shifts too', () => {
    expect(
      offsetChanges('Europe/Paris', from)
        .slice(0, 2)
        .map((c) => [c.at.toISOString(), c.shiftMinutes]),
    ).toEqual([
      ['2027-10-31T01:00:00.000Z', -60],
      ['2028-03-26T01:00:00.000Z', 60],
    ]);
    expect(
      offsetChanges('Australia/Lord_Howe', from)
        .slice(0, 2)
        .map((c) => c.shiftMinutes),
    ).toEqual([30, -30]);
    // The calendar's whole cycle ahead: two changes a year for 28 years.
    expect(offsetChanges('Europe/Paris', from)).toHaveLength(56);
    expect(offsetChanges('UTC', from)).toEqual([]);
  });

  it('agrees with walking every occurrence of a year through croner, seconds fields and daylight saving included', () => {
    // Two years: the rule holds for the task's whole life, and a gap that needs a 28-day February
    // (28 February 23:59 → 1 March 00:00) only shows in a year that is not a leap year (2029 here;
    // 2028 is one). Daylight saving repeats every year, so the second adds no other gap.
    const to = new Date(from.getTime() + 2 * 366 * 86_400_000);
    const days = fc.oneof(
      fc.record({
        dom: fc.constantFrom('*', '1,31', '28,1', '29,1', '30,31', '15'),
        month: fc.constantFrom('*', '2,3', '1,3', '12,1', '4'),
        dow: fc.constant('*'),
      }),
      fc.record({
        dom: fc.constant('*'),
        month: fc.constantFrom('*', '3', '10,11'),
        dow: fc.constantFrom('MON', 'SAT,SUN', '0,3,5', 'MON-FRI'),
      }),
    );
    const expression = fc
      .tuple(
        fc.constantFrom('0', '0,30', '10-20/10', '59'),
        fc.constantFrom('0', '0,59', '30', '15-45/30'),
        fc.constantFrom('0,23', '1,3', '2', '1-3', '12'),
        days,
      )
      .map(([s, m, h, d]) => `${s} ${m} ${h} ${d.dom} ${d.month} ${d.dow}`);
    fc.assert(
      fc.property(
        expression,
        fc.constantFrom('UTC', 'Europe/Paris', 'Australia/Lord_Howe', 'America/New_York'),
        fc.constantFrom(60, 1800, 3600, 7200),
        (cron, timezone, minSeconds) => {
          const walked = smallestGapByWalking(cron, timezone, from, to);
          const found = cronGapBelow(cron, timezone, minSeconds, from);
          // What two years show is found; more may be (a later year's daylight-saving day, a
          // 28-day February), so a find is checked to be a real gap under the floor, not the walk's.
          if (walked < minSeconds) expect(found).not.toBeNull();
          if (found) expect(found.gapSeconds).toBeLessThan(minSeconds);
        },
      ),
      { numRuns: 40 },
    );
  });
});
