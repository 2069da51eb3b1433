/**
 * WebGPU for Node: Dawn's `dawn.node` (the `webgpu` npm package) installed as `navigator.gpu`,
 * which is what @tensorflow/tfjs-backend-webgpu looks for. That package decides at import time
 * whether WebGPU exists (`isWebGPUSupported()` reads `navigator.gpu`), so `installNavigatorGpu()`
 * must run before it is imported; `lib/compute/backend.ts` imports it dynamically afterwards.
 *
 * On Linux Dawn drives the GPU through Vulkan: it needs the Vulkan loader (libvulkan.so.1) and
 * a driver manifest (ICD) for the GPU, e.g. NVIDIA's nvidia_icd.json. Mesa's lavapipe is a
 * Vulkan driver on the CPU; Dawn reports it as a "software" adapter, which runs every kernel
 * correctly but is no GPU (the tests use it to check the WebGPU kernels without one).
 */

/** What tfjs and the logs need of a WebGPU adapter. */
export interface WebGpuAdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A CPU implementation (lavapipe, SwiftShader), not a GPU. */
  software: boolean;
}

interface AdapterLike {
  info?: { vendor?: string; architecture?: string; device?: string; description?: string };
  isFallbackAdapter?: boolean;
}

interface GpuLike {
  requestAdapter(options?: { powerPreference?: 'low-power' | 'high-performance' }): Promise<AdapterLike | null>;
}

let installed: Promise<GpuLike> | undefined;

/**
 * Loads dawn.node and sets `navigator.gpu` and the WebGPU globals (GPUBufferUsage, ...).
 * Rejects when the `webgpu` package or its binary for this platform is missing.
 */
export function installNavigatorGpu(): Promise<GpuLike> {
  installed ??= (async () => {
    // A dynamic import: `webgpu` is an optional dependency, and bundles keep it external.
    const dawn = (await import('webgpu')) as { create(flags: string[]): unknown; globals: object };
    Object.assign(globalThis, dawn.globals);
    // Dawn rounds timestamp-query results (a browser's guard against timing attacks); the GPU
    // profile (gpu/profile.ts) needs kernel times finer than that, and a worker has no such threat.
    // PNEUMOGAN_DAWN_TOGGLES enables more of Dawn's toggles (comma-separated, e.g. skip_validation).
    const extra = process.env.PNEUMOGAN_DAWN_TOGGLES?.trim();
    const gpu = dawn.create([
      'disable-dawn-features=timestamp_quantization',
      ...(extra ? [`enable-dawn-features=${extra}`] : []),
    ]) as GpuLike;
    const holder = globalThis as { navigator?: object };
    // Node 21+ has a navigator object of its own; Node 20 has none.
    if (holder.navigator) Object.defineProperty(holder.navigator, 'gpu', { value: gpu, configurable: true });
    else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true });
    return gpu;
  })();
  return installed;
}

/** The adapter tfjs will get (it asks for high performance too), or undefined when there is none. */
export async function probeWebGpuAdapter(gpu: GpuLike): Promise<WebGpuAdapterSummary | undefined> {
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) return undefined;
  const info = adapter.info ?? {};
  const summary = {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
  };
  const software =
    adapter.isFallbackAdapter === true ||
    summary.architecture === 'software' ||
    /llvmpipe|lavapipe|swiftshader/i.test(`${summary.device} ${summary.description}`);
  return { ...summary, software };
}

/**
 * "WebGPU adapter NVIDIA H100 80GB HBM3 (nvidia; Dawn/Vulkan)". NVIDIA's Vulkan driver gives Dawn
 * only its version as the adapter's description ("NVIDIA: 580.159.04 580.159.4.0"), which would
 * leave lineage without the GPU's model: then the model names the NVIDIA kernel driver reports
 * (`nvidiaGpuNames`, /proc/driver/nvidia/gpus) are used, with the driver string kept beside them.
 */
export function describeWebGpuAdapter(adapter: WebGpuAdapterSummary, nvidiaGpuNames: readonly string[] = []): string {
  let name = adapter.description || adapter.device || 'unnamed adapter';
  const driverOnly = /^nvidia:?\s*[\d.\s]+$/i.test(name);
  const models = [...new Set(nvidiaGpuNames)];
  if (driverOnly && models.length) name = `${models.join(' or ')} (driver ${name.replace(/^nvidia:?\s*/i, '')})`;
  const details = [adapter.vendor, adapter.architecture].filter(Boolean).join(', ');
  const api = process.platform === 'linux' ? 'Dawn/Vulkan' : 'Dawn';
  return `WebGPU adapter ${name} (${details ? `${details}; ` : ''}${api}${adapter.software ? ', software: runs on the CPU' : ''})`;
}
