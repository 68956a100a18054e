import { z } from './zod';

// MikroORM writes a Date with toISOString(), and PostgreSQL reads neither year 0000 nor the
// six-digit years JavaScript writes outside 0001-9999: those instants cannot be sent at all.
const EARLIEST = Date.parse('0001-01-01T00:00:00.000Z');
const LATEST = Date.parse('9999-12-31T23:59:59.999Z');

export const TIMESTAMP_RANGE_MESSAGE = 'must lie between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z';

export function isStorableInstant(date: Date): boolean {
  const ms = date.getTime();
  return ms >= EARLIEST && ms <= LATEST;
}

const IsoInstant = z.iso.datetime({ offset: true });

/** An ISO 8601 instant with an offset, within what the database can compare against. */
export const Timestamp = IsoInstant.refine((value) => isStorableInstant(new Date(value)), TIMESTAMP_RANGE_MESSAGE).openapi({
  type: 'string',
  format: 'date-time',
  // zod's own reading of an instant (stricter than `date-time`), without the year 0000.
  pattern: `^(?!0000-)${IsoInstant._zod.def.pattern!.source.slice(1)}`,
  description: 'ISO 8601 with offset, between years 0001 and 9999 (UTC)',
});
