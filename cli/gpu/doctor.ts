/**
 * `npm run gpu:doctor`: what this machine offers the GPU worker. Prints the checklist of both GPU
 * routes (CUDA: driver and CUDA libraries; WebGPU: Vulkan loader, driver manifest, adapter) and
 * the backend the ladder picks, then exits 0 when that backend runs on a GPU, 1 otherwise.
 */
import { initComputeBackend } from '../../lib/compute/backend.js';
import { gpuChecklist } from '../../lib/compute/gpu-policy.js';

const backend = await initComputeBackend();
for (const check of gpuChecklist(backend)) {
  console.log(`${check.ok ? 'ok  ' : 'MISS'}  ${check.item.padEnd(15)} ${check.detail}`);
}
console.log(
  `\nbackend: ${backend.name} (${backend.packageName}) on ${backend.device}${backend.gpu ? '' : ' - not a GPU'}`,
);
process.exitCode = backend.gpu ? 0 : 1;
