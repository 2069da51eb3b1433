/**
 * AlexNet (torchvision.models.alexnet). Weight-owning layers: features.0|3|6|8|10 (conv),
 * classifier.1|4|6 (linear). Each ReLU after a conv/linear is fused into that layer's activation,
 * so e.g. `features.1` has no layer of its own. The feature map is flattened in PyTorch's
 * channel-major order (a Permute to NCHW precedes the Flatten), so `classifier.1` takes
 * torchvision's weights with only the plain transpose.
 */
import * as tf from '@tensorflow/tfjs';
import { Dropout } from '../dropout.js';
import { AdaptiveAvgPool2d } from './adaptive-avg-pool.js';
import {
  ap,
  channels,
  conv,
  cv,
  dense,
  imageInput,
  maxPool,
  pl,
  torchDefaultBias,
  torchDefaultKernel,
  widthFn,
  type BackboneOptions,
  type SpatialOp,
  type ST,
} from './layers.js';

/** The resolution-changing ops on the main path, for the smallest input the net accepts. */
export const spatialChain: SpatialOp[] = [
  cv(11, 4, 2),
  pl(3, 2, 0, false),
  cv(5, 1, 2),
  pl(3, 2, 0, false),
  cv(3, 1, 1),
  pl(3, 2, 0, false),
];

export function build(o: BackboneOptions): tf.LayersModel {
  const ch = widthFn(o.widthMultiplier);
  const input = imageInput(o);
  const tconv = (x: ST, name: string, filters: number, kernel: number, stride: number, padding: number): ST =>
    conv(x, {
      name,
      filters,
      kernel,
      stride,
      padding,
      bias: true,
      relu: true,
      kernelInit: torchDefaultKernel(),
      biasInit: torchDefaultBias(channels(x) * kernel * kernel),
    });
  let x = tconv(input, 'features.0', ch(64), 11, 4, 2); // + features.1 ReLU
  x = maxPool(x, 'features.2', 3, 2, 0, false);
  x = tconv(x, 'features.3', ch(192), 5, 1, 2);
  x = maxPool(x, 'features.5', 3, 2, 0, false);
  x = tconv(x, 'features.6', ch(384), 3, 1, 1);
  x = tconv(x, 'features.8', ch(256), 3, 1, 1);
  x = tconv(x, 'features.10', ch(256), 3, 1, 1);
  x = maxPool(x, 'features.12', 3, 2, 0, false);
  x = ap(new AdaptiveAvgPool2d({ outputSize: 6, name: 'avgpool' }), x);
  // torch.flatten of NCHW: channel-major order, so classifier.1 matches torchvision's layout.
  x = ap(tf.layers.permute({ dims: [3, 1, 2], name: 'avgpool.nchw' }), x);
  x = ap(tf.layers.flatten({ name: 'flatten' }), x);
  const fc = (x: ST, name: string, units: number, relu: boolean): ST =>
    dense(x, name, units, relu, torchDefaultKernel(), torchDefaultBias(x.shape[1] ?? 1));
  x = ap(new Dropout({ rate: o.dropout, name: 'classifier.0' }), x);
  x = fc(x, 'classifier.1', ch(4096), true); // + classifier.2 ReLU
  x = ap(new Dropout({ rate: o.dropout, name: 'classifier.3' }), x);
  x = fc(x, 'classifier.4', ch(4096), true); // + classifier.5 ReLU
  x = fc(x, 'classifier.6', o.numClasses, false);
  return tf.model({ inputs: input, outputs: x, name: 'alexnet' });
}
