/** Task queues (defaults; deployments rename them through lib/settings.ts). */
export { GPU_TASK_QUEUE, ORCHESTRATION_TASK_QUEUE } from '../lib/task-queues.js';
