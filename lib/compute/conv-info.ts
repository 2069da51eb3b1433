/** tfjs's description of a 2-D convolution over channels-last tensors, without dilation. */
import * as tf from '@tensorflow/tfjs';

export function channelsLastConvInfo(
  xShape: readonly number[],
  filterShape: readonly number[],
  strides: number | [number, number],
  pad: tf.Conv2DAttrs['pad'],
  dimRoundingMode?: tf.Conv2DAttrs['dimRoundingMode'],
): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    'channelsLast',
  );
}
