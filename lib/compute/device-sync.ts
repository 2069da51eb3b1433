/**
 * Waits until the compute device has finished everything queued so far. On WebGPU kernels run
 * asynchronously: a loop that issues steps without reading anything back returns long before the
 * GPU is done, so a clock read then measures the host, not the device. Reading back one value
 * computed on the device waits for the queue (it executes in order); on the CPU backends kernels
 * are synchronous and this returns at once.
 */
import * as tf from '@tensorflow/tfjs';

export async function syncDevice(): Promise<void> {
  // `fill` runs as a program on the device (not a host-side constant), so its readback queues behind all prior work.
  const marker = tf.fill([1], 0);
  try {
    await marker.data();
  } finally {
    marker.dispose();
  }
}
