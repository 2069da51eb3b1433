/**
 * The default task queues: workflows and light activities on one, accelerator-bound activities
 * on the other. Side-effect free, so workflow code may import it; deployments rename them through
 * lib/settings.ts.
 */
export const ORCHESTRATION_TASK_QUEUE = 'pneumogan';
export const GPU_TASK_QUEUE = 'pneumogan-gpu';
