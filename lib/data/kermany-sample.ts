import path from 'node:path';

/**
 * The 366 real X-rays CI provides beside the checkout (`../shared/data/kermany-sample`); absent
 * in a user's clone, so tests and benchmarks that read it say so and skip it.
 */
export const KERMANY_SAMPLE = path.resolve(import.meta.dirname, '..', '..', '..', 'shared', 'data', 'kermany-sample');

/** The archive's whole train split (5,216 real X-rays), beside CI checkouts like the sample. */
export const KERMANY_TRAIN = path.resolve(import.meta.dirname, '..', '..', '..', 'shared', 'data', 'kermany-train');
