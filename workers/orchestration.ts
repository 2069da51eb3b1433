/**
 * Entry point: the orchestration worker, configured by environment (lib/settings.ts, README "Running on a cluster").
 */
import { runWorkerFromEnv } from './main.js';

await runWorkerFromEnv('orchestration');
