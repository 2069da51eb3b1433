/**
 * Dropout as a layer whose mask is drawn where the activations live (lib/compute/dropout.ts)
 * rather than in JavaScript. Its seed is one draw of Math.random() per call, which the classifier
 * seeds per batch (lib/training/classifier.ts), so a trial's masks are reproducible and the same on
 * every backend. The class name is tfjs-layers', whose Dropout a saved model loads as: the same
 * layer at inference, where both pass their input through.
 */
import * as tf from '@tensorflow/tfjs';
import { dropout } from '../compute/dropout.js';

export class Dropout extends tf.layers.Layer {
  static className = 'Dropout';
  private readonly rate: number;

  constructor(args: { rate: number; name: string }) {
    super({ name: args.name });
    if (!(args.rate >= 0 && args.rate < 1))
      throw new Error(`${args.name}: dropout rate must be in [0, 1) (got ${args.rate})`);
    this.rate = args.rate;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: { training?: boolean }): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0]! : inputs;
    if (kwargs.training !== true || this.rate === 0) return x;
    return dropout(x, this.rate, Math.floor(Math.random() * 2 ** 32));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), rate: this.rate };
  }
}
