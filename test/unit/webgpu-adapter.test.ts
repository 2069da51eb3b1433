/**
 * How a WebGPU adapter is named in logs and lineage (lib/compute/webgpu.ts): NVIDIA's Vulkan
 * driver reports only its version as the description (seen on an H100: "NVIDIA: 580.159.04
 * 580.159.4.0"), so the GPU model comes from the NVIDIA kernel driver's list instead.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeWebGpuAdapter, type WebGpuAdapterSummary } from '../../lib/compute/webgpu.js';

const h100: WebGpuAdapterSummary = {
  vendor: 'nvidia',
  architecture: '',
  device: '',
  description: 'NVIDIA: 580.159.04 580.159.4.0',
  software: false,
};

test('an NVIDIA adapter that reports only its driver version is named by the GPU model', () => {
  const label = describeWebGpuAdapter(h100, ['NVIDIA H100 80GB HBM3']);
  assert.match(label, /^WebGPU adapter NVIDIA H100 80GB HBM3 \(driver 580\.159\.04 580\.159\.4\.0\) \(nvidia; Dawn/);
  // Several GPUs of one model name it once; different models are all listed (Dawn does not say which).
  assert.match(
    describeWebGpuAdapter(h100, ['NVIDIA H100 80GB HBM3', 'NVIDIA H100 80GB HBM3']),
    /adapter NVIDIA H100 80GB HBM3 \(driver/,
  );
  assert.match(describeWebGpuAdapter(h100, ['NVIDIA A100', 'NVIDIA L4']), /adapter NVIDIA A100 or NVIDIA L4 \(driver/);
});

test('without the kernel driver list, and for adapters that name themselves, the description stays', () => {
  assert.match(describeWebGpuAdapter(h100), /^WebGPU adapter NVIDIA: 580\.159\.04 580\.159\.4\.0 \(nvidia;/);
  const lavapipe = { ...h100, vendor: 'mesa', description: 'llvmpipe (LLVM 15.0.6)', software: true };
  assert.match(
    describeWebGpuAdapter(lavapipe, ['NVIDIA H100 80GB HBM3']),
    /^WebGPU adapter llvmpipe \(LLVM 15\.0\.6\) \(mesa; .*software: runs on the CPU\)$/,
  );
});
