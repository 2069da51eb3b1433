import path from 'node:path';

/**
 * The 366 real X-rays CI provides beside the checkout (`../shared/data/kermany-sample`); absent
 * in a user's clone, so tests and benchmarks that read it say so and skip it.
 */
export const KERMANY_SAMPLE = path.resolve(import.meta.dirname, '..', '..', '..', 'shared', 'data', 'kermany-sample');
