/**
 * Entry point: the orchestration worker, configured by environment (README, "Workers"):
 * PNEUMOGAN_TEMPORAL_ADDRESS, PNEUMOGAN_TEMPORAL_NAMESPACE, PNEUMOGAN_S3_ENDPOINT,
 * PNEUMOGAN_S3_ACCESS_KEY, PNEUMOGAN_S3_SECRET_KEY, PNEUMOGAN_S3_BUCKET, PNEUMOGAN_GPU_CONCURRENCY.
 */
import { runWorkerFromEnv } from './main.js';

await runWorkerFromEnv('orchestration');
