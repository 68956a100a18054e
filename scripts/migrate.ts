/** `npm run migration:up [-- --seed]`: applies pending migrations (and seeds) against DATABASE_URL. */
import { seed } from '../entities/seeders/seed';
import { loadConfig } from '../lib/config';
import { createLogger } from '../lib/logger';
import { initOrm, migrateUp, requireDatabaseUrl } from '../lib/orm';

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config, 'migrate');
  const orm = await initOrm(requireDatabaseUrl(config.database.url));
  try {
    const applied = await migrateUp(orm);
    logger.info({ applied }, applied.length ? 'migrations applied' : 'database schema is up to date');
    if (process.argv.includes('--seed')) {
      const result = await seed(orm.em.fork(), { bcryptCost: config.auth.bcryptCost });
      logger.info({ toolsCreated: result.toolsCreated, toolsUpdated: result.toolsUpdated, adminEmail: result.adminEmail }, 'seeded');
      if (result.adminPassword) {
        // Printed once, on the run that created the admin; it is stored only as a bcrypt hash.
        process.stdout.write(
          `\nADMIN ${result.adminEmail} password: ${result.adminPassword}\n(shown once; change it after logging in)\n\n`,
        );
      }
    }
  } finally {
    await orm.close(true);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`migrate failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
