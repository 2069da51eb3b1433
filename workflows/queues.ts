/** Task queues: workflows and light activities on one, accelerator-bound activities on the other. */
export const ORCHESTRATION_TASK_QUEUE = 'pneumogan';
export const GPU_TASK_QUEUE = 'pneumogan-gpu';
