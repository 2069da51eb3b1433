/**
 * GoogLeNet (torchvision.models.googlenet, aux_logits=False). Weight-owning layers: conv1.conv,
 * conv1.bn, conv2.*, conv3.*, inception3a.branch1.conv, inception3a.branch2.0.conv / .1.conv,
 * inception3a.branch3.{0,1}.{conv,bn}, inception3a.branch4.1.conv, ... inception5b.*, fc.
 * torchvision's pretrained GoogLeNet also sets `transform_input=True` (an input
 * re-normalisation); that belongs to the caller's preprocessing, not to this graph.
 */
import * as tf from '@tensorflow/tfjs';
import { Dropout } from '../dropout.js';
import {
  ap,
  batchNorm,
  conv,
  cv,
  dense,
  imageInput,
  maxPool,
  pl,
  relu,
  torchDefaultBias,
  widthFn,
  type BackboneOptions,
  type SpatialOp,
  type ST,
  type Init,
} from './layers.js';

/** The resolution-changing ops on the main path, for the smallest input the net accepts. */
export const spatialChain: SpatialOp[] = [
  cv(7, 2, 3),
  pl(3, 2, 0, true),
  cv(3, 1, 1),
  pl(3, 2, 0, true),
  pl(3, 2, 0, true),
  pl(2, 2, 0, true),
];

export function build(o: BackboneOptions): tf.LayersModel {
  const ch = widthFn(o.widthMultiplier);
  // torchvision: trunc_normal_(std=0.01, a=-2, b=2) on every conv/linear (bounds are +-200
  // sigma, i.e. a plain normal); BatchNorm gamma 1, beta 0; BasicConv2d BN eps 0.001.
  const init = (): Init => tf.initializers.randomNormal({ mean: 0, stddev: 0.01 });
  const basic = (x: ST, name: string, filters: number, kernel: number, stride = 1, padding = 0): ST => {
    x = conv(x, { name: `${name}.conv`, filters, kernel, stride, padding, bias: false, kernelInit: init() });
    x = batchNorm(x, `${name}.bn`, 1e-3);
    return relu(x, `${name}.relu`);
  };
  const inception = (
    x: ST,
    name: string,
    c1: number,
    c3r: number,
    c3: number,
    c5r: number,
    c5: number,
    pool: number,
  ): ST => {
    const b1 = basic(x, `${name}.branch1`, ch(c1), 1);
    const b2 = basic(basic(x, `${name}.branch2.0`, ch(c3r), 1), `${name}.branch2.1`, ch(c3), 3, 1, 1);
    // torchvision's "5x5" branch really uses a 3x3 conv (a known quirk kept for weight compatibility).
    const b3 = basic(basic(x, `${name}.branch3.0`, ch(c5r), 1), `${name}.branch3.1`, ch(c5), 3, 1, 1);
    const b4 = basic(maxPool(x, `${name}.branch4.0`, 3, 1, 1, true), `${name}.branch4.1`, ch(pool), 1);
    return ap(tf.layers.concatenate({ axis: -1, name }), [b1, b2, b3, b4]);
  };
  const input = imageInput(o);
  let x = basic(input, 'conv1', ch(64), 7, 2, 3);
  x = maxPool(x, 'maxpool1', 3, 2, 0, true);
  x = basic(x, 'conv2', ch(64), 1);
  x = basic(x, 'conv3', ch(192), 3, 1, 1);
  x = maxPool(x, 'maxpool2', 3, 2, 0, true);
  x = inception(x, 'inception3a', 64, 96, 128, 16, 32, 32);
  x = inception(x, 'inception3b', 128, 128, 192, 32, 96, 64);
  x = maxPool(x, 'maxpool3', 3, 2, 0, true);
  x = inception(x, 'inception4a', 192, 96, 208, 16, 48, 64);
  x = inception(x, 'inception4b', 160, 112, 224, 24, 64, 64);
  x = inception(x, 'inception4c', 128, 128, 256, 24, 64, 64);
  x = inception(x, 'inception4d', 112, 144, 288, 32, 64, 64);
  x = inception(x, 'inception4e', 256, 160, 320, 32, 128, 128);
  x = maxPool(x, 'maxpool4', 2, 2, 0, true);
  x = inception(x, 'inception5a', 256, 160, 320, 32, 128, 128);
  x = inception(x, 'inception5b', 384, 192, 384, 48, 128, 128);
  x = ap(tf.layers.globalAveragePooling2d({ name: 'avgpool' }), x); // AdaptiveAvgPool2d((1,1)) + flatten
  x = ap(new Dropout({ rate: o.dropout, name: 'dropout' }), x);
  x = dense(x, 'fc', o.numClasses, false, init(), torchDefaultBias(x.shape[1] ?? 1)); // bias keeps nn.Linear's default
  return tf.model({ inputs: input, outputs: x, name: 'googlenet' });
}
