/**
 * Gradients of Mean and Sum that broadcast on the device. tfjs's own multiply the incoming
 * gradient by `ones(x.shape)`, a tensor built in JavaScript on the host, element by element, and
 * then uploaded: for a batch-norm layer's moments that is the whole activation (32 x 112 x 112 x
 * 64 floats in ResNet18's stem, 100 MB) twice per layer and step. On an H100 through WebGPU that
 * host work was 28-40% of a training step's time (gpu/host-profile.ts), with as much again in
 * creating, filling and freeing the upload buffers. Broadcasting (a Tile kernel) gives the same
 * values bit for bit: dy x 1 is dy, and the division by the reduced size is the same division.
 */
import * as tf from '@tensorflow/tfjs';

/** tfjs's own configs, kept to put back. */
let stock: Record<string, tf.GradConfig> | undefined;

/** dy reshaped to keep the reduced axes (size 1) and broadcast back to x's shape. */
function broadcastBack(dy: tf.Tensor, x: tf.Tensor, axis: number | number[]): tf.Tensor {
  const axes = tf.util.parseAxisParam(axis, x.shape);
  const kept = x.shape.map((size, i) => (axes.includes(i) ? 1 : size));
  return tf.broadcastTo(tf.reshape(dy, kept), x.shape);
}

const SUM: tf.GradConfig = {
  kernelName: tf.Sum,
  inputsToSave: ['x'],
  gradFunc: (dy, [x], attrs) => ({
    x: () => broadcastBack(dy as tf.Tensor, x!, (attrs as unknown as tf.SumAttrs).axis),
  }),
};

const MEAN: tf.GradConfig = {
  kernelName: tf.Mean,
  inputsToSave: ['x'],
  gradFunc: (dy, [x], attrs) => ({
    x: () => {
      const { axis } = attrs as unknown as tf.MeanAttrs;
      const reduceSize = tf.util.parseAxisParam(axis, x!.shape).reduce((size, a) => size * x!.shape[a]!, 1);
      return tf.div(broadcastBack(dy as tf.Tensor, x!, axis), reduceSize);
    },
  }),
};

/** Puts ours in place (or tfjs's back with `false`); the registry is global, for every backend. */
export function useDeviceSideGradients(ours = true): void {
  stock ??= { [tf.Sum]: tf.getGradient(tf.Sum), [tf.Mean]: tf.getGradient(tf.Mean) };
  for (const config of ours ? [SUM, MEAN] : Object.values(stock)) tf.registerGradient(config);
}
