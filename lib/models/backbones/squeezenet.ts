/**
 * SqueezeNet 1.1 (torchvision.models.squeezenet1_1). Weight-owning layers: features.0,
 * features.{3,4,6,7,9,10,11,12}.{squeeze,expand1x1,expand3x3}, classifier.1 (the 1x1 conv head).
 */
import * as tf from '@tensorflow/tfjs';
import { Dropout } from '../dropout.js';
import {
  ap,
  conv,
  cv,
  imageInput,
  maxPool,
  pl,
  widthFn,
  type BackboneOptions,
  type SpatialOp,
  type ST,
  type Init,
} from './layers.js';

/** The resolution-changing ops on the main path, for the smallest input the net accepts. */
export const spatialChain: SpatialOp[] = [cv(3, 2, 0), pl(3, 2, 0, true), pl(3, 2, 0, true), pl(3, 2, 0, true)];

export function build(o: BackboneOptions): tf.LayersModel {
  const ch = widthFn(o.widthMultiplier);
  // torchvision: kaiming_uniform_ (a=0) on every conv but the last, which is normal(0, 0.01); biases 0.
  const kaiming = (): Init => tf.initializers.varianceScaling({ scale: 2, mode: 'fanIn', distribution: 'uniform' });
  const c = (x: ST, name: string, filters: number, kernel: number, stride = 1, padding = 0): ST =>
    conv(x, { name, filters, kernel, stride, padding, bias: true, relu: true, kernelInit: kaiming() });
  const fire = (x: ST, name: string, squeeze: number, e1: number, e3: number): ST => {
    const s = c(x, `${name}.squeeze`, ch(squeeze), 1); // + squeeze_activation
    const a = c(s, `${name}.expand1x1`, ch(e1), 1); // + expand1x1_activation
    const b = c(s, `${name}.expand3x3`, ch(e3), 3, 1, 1); // + expand3x3_activation
    return ap(tf.layers.concatenate({ axis: -1, name }), [a, b]);
  };
  const input = imageInput(o);
  let x = c(input, 'features.0', ch(64), 3, 2); // + features.1 ReLU
  x = maxPool(x, 'features.2', 3, 2, 0, true);
  x = fire(x, 'features.3', 16, 64, 64);
  x = fire(x, 'features.4', 16, 64, 64);
  x = maxPool(x, 'features.5', 3, 2, 0, true);
  x = fire(x, 'features.6', 32, 128, 128);
  x = fire(x, 'features.7', 32, 128, 128);
  x = maxPool(x, 'features.8', 3, 2, 0, true);
  x = fire(x, 'features.9', 48, 192, 192);
  x = fire(x, 'features.10', 48, 192, 192);
  x = fire(x, 'features.11', 64, 256, 256);
  x = fire(x, 'features.12', 64, 256, 256);
  x = ap(new Dropout({ rate: o.dropout, name: 'classifier.0' }), x);
  // final_conv + classifier.2 ReLU: torchvision's logits pass through a ReLU before pooling.
  x = conv(x, {
    name: 'classifier.1',
    filters: o.numClasses,
    kernel: 1,
    bias: true,
    relu: true,
    kernelInit: tf.initializers.randomNormal({ mean: 0, stddev: 0.01 }),
  });
  x = ap(tf.layers.globalAveragePooling2d({ name: 'classifier.3' }), x); // AdaptiveAvgPool2d((1,1)) + flatten
  return tf.model({ inputs: input, outputs: x, name: 'squeezenet1_1' });
}
