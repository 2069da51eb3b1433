/**
 * A backend's kernel swapped for our version of it, which wraps tfjs's own (the fallback for
 * cases it does not handle), and back. tfjs's config is kept at the first swap, so turning ours
 * off restores it exactly; whether ours runs is read from tfjs's kernel registry, not remembered.
 */
import * as tf from '@tensorflow/tfjs';

export interface KernelSwap {
  /** Registers ours (or tfjs's own with `false`); safe to call any number of times. */
  use(ours: boolean): void;
  inUse(): boolean;
}

export function kernelSwap(
  kernelName: string,
  backendName: string,
  wrap: (stock: tf.KernelFunc) => tf.KernelFunc,
): KernelSwap {
  let stock: tf.KernelConfig | undefined;
  let ours: tf.KernelFunc | undefined;
  return {
    use(on) {
      stock ??= tf.getKernel(kernelName, backendName);
      if (!stock) throw new Error(`the ${backendName} backend has no ${kernelName} kernel to replace; is it loaded?`);
      ours ??= wrap(stock.kernelFunc);
      tf.unregisterKernel(kernelName, backendName);
      tf.registerKernel(on ? { ...stock, kernelFunc: ours } : stock);
    },
    inUse: () => ours !== undefined && tf.getKernel(kernelName, backendName)?.kernelFunc === ours,
  };
}
