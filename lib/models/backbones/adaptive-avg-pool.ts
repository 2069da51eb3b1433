/**
 * torch.nn.AdaptiveAvgPool2d as a TensorFlow.js layer. AlexNet's AdaptiveAvgPool2d((6,6)) uses
 * the exact PyTorch bin rule, so small inputs whose feature map is below 6x6 are replicated the
 * way PyTorch does.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * Row i of PyTorch's adaptive average pool as an [out, n] averaging matrix: input cells
 * [floor(i*n/out), ceil((i+1)*n/out)). Bins overlap when n > out does not divide evenly and
 * repeat input cells when n < out (a 1x1 map becomes 6x6 copies), exactly as in ATen.
 */
export function adaptivePoolMatrix(n: number, out: number): number[][] {
  const rows: number[][] = [];
  for (let i = 0; i < out; i++) {
    const start = Math.floor((i * n) / out);
    const end = Math.ceil(((i + 1) * n) / out);
    const row = new Array<number>(n).fill(0);
    for (let j = start; j < end; j++) row[j] = 1 / (end - start);
    rows.push(row);
  }
  return rows;
}

/** torch.nn.AdaptiveAvgPool2d for NHWC tensors (weightless; separable, so two matmuls). */
export class AdaptiveAvgPool2d extends tf.layers.Layer {
  static className = 'AdaptiveAvgPool2d';
  private readonly outH: number;
  private readonly outW: number;

  constructor(args: { outputSize: number | [number, number]; name?: string }) {
    super({ name: args.name });
    const [h, w] = typeof args.outputSize === 'number' ? [args.outputSize, args.outputSize] : args.outputSize;
    this.outH = h;
    this.outW = w;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const s = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    return [s[0] ?? null, this.outH, this.outW, s[3] ?? null];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
      const [n, h, w, c] = x.shape;
      if (h === this.outH && w === this.outW) return x.clone();
      const ah = tf.tensor2d(adaptivePoolMatrix(h, this.outH)); // [outH, h]
      const aw = tf.tensor2d(adaptivePoolMatrix(w, this.outW)); // [outW, w]
      // pool H: [N,H,W,C] -> [N,W,C,H] -> (N*W*C, H) x (H, outH)
      const t1 = x
        .transpose([0, 2, 3, 1])
        .reshape([n * w * c, h])
        .matMul(ah, false, true);
      // pool W: [N,W,C,outH] -> [N,outH,C,W] -> (N*outH*C, W) x (W, outW)
      const t2 = t1
        .reshape([n, w, c, this.outH])
        .transpose([0, 3, 2, 1])
        .reshape([n * this.outH * c, w])
        .matMul(aw, false, true);
      return t2.reshape([n, this.outH, c, this.outW]).transpose([0, 1, 3, 2]);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), outputSize: [this.outH, this.outW] };
  }
}
tf.serialization.registerClass(AdaptiveAvgPool2d);
