import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { computeLabel, type ComputeBackend } from '../../lib/compute/backend.js';
import { cpuDescription, nvidiaDriverVersion } from '../../lib/compute/devices.js';
import { NoGpuError, requireGpu } from '../../lib/compute/gpu-policy.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const onCpu: ComputeBackend = {
  name: 'tensorflow',
  packageName: '@tensorflow/tfjs-node',
  device: cpuDescription(2),
  gpu: false,
  skipped: ['tensorflow-gpu: @tensorflow/tfjs-node-gpu is not provisioned (npm run setup:gpu)'],
};

test('a backend on the CPU is refused with a checklist of what is missing, unless the CPU is allowed', () => {
  assert.throws(
    () => requireGpu(onCpu, {}),
    (err: Error) => {
      assert.ok(err instanceof NoGpuError);
      assert.match(err.message, /would train on CPU \(2 threads, /);
      assert.match(err.message, /- CUDA libraries: /);
      assert.match(err.message, /tensorflow-gpu: @tensorflow\/tfjs-node-gpu is not provisioned/);
      assert.match(err.message, /Set PNEUMOGAN_ALLOW_CPU=1/);
      // On a machine without the NVIDIA kernel module the driver is named as missing.
      if (!nvidiaDriverVersion()) assert.match(err.message, /- NVIDIA driver: no NVIDIA kernel module is loaded/);
      return true;
    },
  );
  assert.match(requireGpu(onCpu, { PNEUMOGAN_ALLOW_CPU: '1' }) ?? '', /no GPU: training on CPU \(2 threads/);
  assert.throws(() => requireGpu(onCpu, { PNEUMOGAN_ALLOW_CPU: '0' }), NoGpuError);
});

test('a backend on a GPU passes, and its label names the device before the backend', () => {
  const onGpu: ComputeBackend = {
    ...onCpu,
    name: 'tensorflow-gpu',
    device: 'CUDA GPU:0 NVIDIA H100 80GB HBM3',
    gpu: true,
    skipped: [],
  };
  assert.equal(requireGpu(onGpu, {}), undefined);
  assert.equal(computeLabel(onGpu), 'CUDA GPU:0 NVIDIA H100 80GB HBM3 [tensorflow-gpu]');
});

test('the GPU worker entry point exits 1 before connecting when it would train on the CPU', async (t) => {
  if (nvidiaDriverVersion())
    return t.skip('this machine has an NVIDIA driver; the refusal needs a machine without a GPU');
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'workers', 'gpu.ts')], {
    cwd: root,
    env: {
      ...process.env,
      PNEUMOGAN_ALLOW_CPU: '',
      PNEUMOGAN_BACKEND: 'cpu',
      PNEUMOGAN_TEMPORAL_ADDRESS: '127.0.0.1:1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  assert.equal(code, 1, output);
  assert.match(output, /gpu worker refuses to start\. No usable GPU: this GPU worker would train on CPU \(1 thread, /);
  assert.doesNotMatch(output, /Connection refused|TransportError/);
});
