/**
 * ResNet18 (torchvision.models.resnet18). Weight-owning layers: conv1, bn1,
 * layer{1-4}.{0,1}.{conv1,bn1,conv2,bn2}, layer{2-4}.0.downsample.0 (conv) / .downsample.1 (bn), fc.
 */
import * as tf from '@tensorflow/tfjs';
import {
  ap,
  batchNorm,
  channels,
  conv,
  cv,
  dense,
  imageInput,
  maxPool,
  pl,
  relu,
  torchDefaultBias,
  torchDefaultKernel,
  widthFn,
  type BackboneOptions,
  type SpatialOp,
  type ST,
} from './layers.js';

/** The resolution-changing ops on the main path, for the smallest input the net accepts. */
export const spatialChain: SpatialOp[] = [cv(7, 2, 3), pl(3, 2, 1, false), cv(3, 2, 1), cv(3, 2, 1), cv(3, 2, 1)];

export function build(o: BackboneOptions): tf.LayersModel {
  const ch = widthFn(o.widthMultiplier);
  const EPS = 1e-5; // nn.BatchNorm2d default
  // torchvision: kaiming_normal_(mode='fan_out', nonlinearity='relu') on convs; BN gamma 1, beta 0.
  const kconv = (x: ST, name: string, filters: number, kernel: number, stride: number, padding: number): ST =>
    conv(x, {
      name,
      filters,
      kernel,
      stride,
      padding,
      bias: false,
      kernelInit: tf.initializers.randomNormal({ mean: 0, stddev: Math.sqrt(2 / (filters * kernel * kernel)) }),
    });
  const block = (x: ST, name: string, planes: number, stride: number): ST => {
    let identity = x;
    let y = kconv(x, `${name}.conv1`, planes, 3, stride, 1);
    y = batchNorm(y, `${name}.bn1`, EPS);
    y = relu(y, `${name}.relu1`);
    y = kconv(y, `${name}.conv2`, planes, 3, 1, 1);
    y = batchNorm(y, `${name}.bn2`, EPS);
    if (stride !== 1 || channels(x) !== planes) {
      identity = kconv(x, `${name}.downsample.0`, planes, 1, stride, 0);
      identity = batchNorm(identity, `${name}.downsample.1`, EPS);
    }
    y = ap(tf.layers.add({ name: `${name}.add` }), [y, identity]);
    return relu(y, `${name}.relu2`);
  };
  const input = imageInput(o);
  let x = kconv(input, 'conv1', ch(64), 7, 2, 3);
  x = batchNorm(x, 'bn1', EPS);
  x = relu(x, 'relu');
  x = maxPool(x, 'maxpool', 3, 2, 1, false);
  const stages: Array<[number, number]> = [
    [64, 1],
    [128, 2],
    [256, 2],
    [512, 2],
  ];
  stages.forEach(([planes, stride], i) => {
    x = block(x, `layer${i + 1}.0`, ch(planes), stride);
    x = block(x, `layer${i + 1}.1`, ch(planes), 1);
  });
  x = ap(tf.layers.globalAveragePooling2d({ name: 'avgpool' }), x); // AdaptiveAvgPool2d((1,1)) + flatten
  x = dense(x, 'fc', o.numClasses, false, torchDefaultKernel(), torchDefaultBias(x.shape[1] ?? 1));
  return tf.model({ inputs: input, outputs: x, name: 'resnet18' });
}
