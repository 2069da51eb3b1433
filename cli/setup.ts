/**
 * One-time local setup, for newcomers and `.ci/run`:
 *
 *   npx tsx cli/setup.ts            find or build the Temporal CLI, check s3rver is importable
 *   npx tsx cli/setup.ts --smoke    ...and start/stop the embedded infrastructure once
 *   npx tsx cli/setup.ts --no-provision   only look, never build (exit 1 when missing)
 *
 * Building the Temporal CLI (`go install`, when no copy is found) takes a few minutes and puts
 * a ~250 MB binary in ~/.cache/pneumogan/bin (or $PNEUMOGAN_CACHE_DIR/bin). Exits non-zero with
 * an explanation when something is missing.
 */
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { startEmbeddedInfrastructure } from '../lib/infra/embedded.js';
import { loadS3rver } from '../lib/infra/s3-server.js';
import { findOrProvisionTemporalCli, temporalCliVersion } from '../lib/infra/temporal-cli.js';

interface SetupOptions {
  provision: boolean;
  smoke?: boolean;
}

const log = (line: string) => console.log(line);

async function main(opts: SetupOptions): Promise<number> {
  const failures: string[] = [];

  let cliPath: string | undefined;
  try {
    cliPath = await findOrProvisionTemporalCli({ log, provision: opts.provision });
    console.log(`ok   Temporal CLI: ${cliPath}`);
    console.log(`     ${await temporalCliVersion(cliPath)}`);
    const onPath = (process.env.PATH ?? '').split(path.delimiter).includes(path.dirname(cliPath));
    if (!onPath && !process.env.TEMPORAL_CLI_PATH) {
      console.log(
        `     (not on PATH; the project finds it anyway. For your shell: export PATH="${path.dirname(cliPath)}:$PATH")`,
      );
    }
  } catch (err) {
    failures.push(`Temporal CLI:\n${(err as Error).message}`);
  }

  try {
    await loadS3rver();
    let version = '?';
    try {
      version = (createRequire(import.meta.url)('s3rver/package.json') as { version: string }).version;
    } catch {
      // version is cosmetic
    }
    console.log(`ok   s3rver ${version} is importable (local S3 server)`);
  } catch (err) {
    failures.push(`s3rver:\n${(err as Error).message}`);
  }

  if (opts.smoke && cliPath) {
    const stateDir = await fs.mkdtemp(path.join(os.tmpdir(), 'pneumogan-setup-'));
    try {
      const started = Date.now();
      const infra = await startEmbeddedInfrastructure({ stateDir, log, temporal: { cliPath, headless: true } });
      console.log(
        `ok   embedded infrastructure started in ${Date.now() - started} ms ` +
          `(Temporal ${infra.temporal.address}, S3 ${infra.s3.endpoint})`,
      );
      await infra.stop();
    } catch (err) {
      failures.push(`embedded infrastructure smoke test:\n${(err as Error).message}`);
    } finally {
      await fs.rm(stateDir, { recursive: true, force: true });
    }
  }

  if (failures.length) {
    for (const f of failures) console.error(`\nFAIL ${f}`);
    console.error(`\nsetup: ${failures.length} problem(s); see above.`);
    return 1;
  }
  console.log('setup: all good');
  return 0;
}

const program = new Command()
  .name('setup')
  .description('Provision the Temporal CLI and check the local S3 server (s3rver) for pneumogan')
  .option('--no-provision', 'only look for the Temporal CLI; never build or download it')
  .option('--smoke', 'also start and stop the embedded infrastructure (Temporal + S3) in a temp dir')
  .action(async (opts: SetupOptions) => {
    process.exitCode = await main(opts);
  });

await program.parseAsync(process.argv);
