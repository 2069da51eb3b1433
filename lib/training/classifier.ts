/**
 * Fine-tunes a backbone on labelled grayscale images and evaluates it. Grayscale is replicated to
 * three channels and normalised with ImageNet statistics, the input contract of the torchvision
 * weights these architectures are published with.
 */
import * as tf from '@tensorflow/tfjs';
import { CLASS_NAMES, type Backbone, type ClassName, type PipelineConfig } from '../../pipelines/schema.js';
import { adam } from '../compute/webgpu-adam.js';
import { InputError } from '../errors.js';
import { buildBackbone } from '../models/backbones/index.js';
import { loadTorchvisionWeights, TORCHVISION_HEADS } from '../models/pretrained.js';
import type { GrayImage } from '../images.js';
import { confusionMatrix, metricsFromConfusion, type ClassificationMetrics } from '../protocol/metrics.js';
import { deriveSeed, SeededRandom } from '../random.js';
import { restoreModelWeights, type TrainingState } from './checkpoint.js';
import { recalibrateBatchNorm } from './batchnorm.js';
import { withSeededMathRandom, yieldToEventLoop } from './determinism.js';
import { captureState, restoreState, runStepLoop, takeData, type StepMetrics, type Trainables } from './loop.js';

const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

export interface LabelledPixels {
  image: GrayImage;
  label: ClassName;
}

export interface ClassifierHistory {
  /** Mean training loss of each batch, in order. */
  loss: number[];
  /** Training accuracy of each batch. */
  accuracy: number[];
}

export interface ClassifierMeta {
  kind: 'classifier';
  backbone: Backbone;
  /** Batches completed over all epochs. */
  batchesDone: number;
  totalBatches: number;
  inputSize: number;
  widthMultiplier: number;
  history: ClassifierHistory;
}

/**
 * Each grey level's three normalised channel values, computed in double precision and rounded to
 * float32 once, exactly as a per-pixel computation would: row `v` holds ((v / 255) - mean) / std.
 */
const NORMALISED_LEVELS = Float32Array.from({ length: 256 * 3 }, (_, i) => {
  const c = i % 3;
  return (Math.floor(i / 3) / 255 - IMAGENET_MEAN[c]!) / IMAGENET_STD[c]!;
});

/**
 * A batch of grey images as the backbones' normalised RGB input [N, size, size, 3]. The host
 * sends one grey level per pixel and the device looks the three channel values up (a gather), so
 * a GPU gets a third of the bytes and the host does no per-value arithmetic (at 224 px and batch
 * 32 that loop took 25-33 ms of each training step on the host of an H100 machine); the values
 * are those of a per-pixel computation, bit for bit.
 */
export function toInputTensor(images: readonly GrayImage[], inputSize: number): tf.Tensor4D {
  const plane = inputSize * inputSize;
  const levels = new Int32Array(images.length * plane);
  images.forEach((image, i) => {
    if (image.size !== inputSize) throw new Error(`classifier image ${i} is ${image.size}px, expected ${inputSize}px`);
    levels.set(image.pixels.subarray(0, plane), i * plane);
  });
  const table: tf.Tensor = tf.tensor2d(NORMALISED_LEVELS, [256, 3]);
  const indices = tf.tensor3d(levels, [images.length, inputSize, inputSize], 'int32');
  try {
    return tf.gather(table, indices) as tf.Tensor4D;
  } finally {
    tf.dispose([table, indices]);
  }
}

export function buildClassifier(
  backbone: Backbone,
  classifier: PipelineConfig['classifier'],
  seed: number,
): tf.LayersModel {
  return withSeededMathRandom(deriveSeed(seed, backbone, 'init'), () =>
    buildBackbone(backbone, {
      inputSize: classifier.inputSize,
      widthMultiplier: classifier.widthMultiplier,
      numClasses: CLASS_NAMES.length,
      dropout: classifier.dropout,
    }),
  );
}

export interface FineTuneOptions {
  backbone: Backbone;
  /** torchvision-named safetensors weights to start from (the head stays fresh). */
  pretrained?: { bytes: Uint8Array; origin: string };
  train: readonly LabelledPixels[];
  classifier: PipelineConfig['classifier'];
  seed: number;
  resume?: TrainingState<ClassifierMeta>;
  onProgress?: (batchesDone: number, totalBatches: number) => void | Promise<void>;
  onCheckpoint?: (state: TrainingState<ClassifierMeta>) => Promise<void>;
  /** See {@link StepLoop.checkpointIntervalMs}. */
  checkpointIntervalMs?: number;
  signal?: AbortSignal;
}

export async function fineTune(
  options: FineTuneOptions,
): Promise<{ model: tf.LayersModel; state: TrainingState<ClassifierMeta> }> {
  const { classifier, seed, backbone } = options;
  const model = buildClassifier(backbone, classifier, seed);
  const optimizer = adam(classifier.learningRate);
  try {
    if (options.pretrained) {
      // A file that does not fit the architecture is bad input: retrying cannot fix it.
      try {
        loadTorchvisionWeights(model, backbone, options.pretrained.bytes, options.pretrained.origin);
      } catch (err) {
        throw new InputError((err as Error).message, { cause: err });
      }
    }
    if (classifier.freeze === 'features') {
      for (const layer of model.layers) if (layer.name !== TORCHVISION_HEADS[backbone]) layer.trainable = false;
    }
    const trainables: Trainables = { models: { model }, optimizers: { optimizer } };
    const batchesPerEpoch = Math.ceil(options.train.length / classifier.batchSize);
    const totalBatches = Math.min(batchesPerEpoch * classifier.epochs, classifier.maxSteps ?? Infinity);
    const history: ClassifierHistory = { loss: [], accuracy: [] };
    if (options.resume) {
      await restoreState(trainables, options.resume, `${backbone} checkpoint`);
      history.loss.push(...options.resume.meta.history.loss);
      history.accuracy.push(...options.resume.meta.history.accuracy);
    }
    const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);

    const step = (index: number): StepMetrics => {
      const epoch = Math.floor(index / batchesPerEpoch);
      const order = new SeededRandom(deriveSeed(seed, backbone, 'epoch', epoch)).shuffle([...options.train.keys()]);
      const batchIndex = index % batchesPerEpoch;
      const members = order
        .slice(batchIndex * classifier.batchSize, (batchIndex + 1) * classifier.batchSize)
        .map((i) => options.train[i]!);
      // Dropout draws its seed from Math.random(): seed it per batch so a trial is reproducible.
      const scalars = withSeededMathRandom(deriveSeed(seed, backbone, 'batch', index), () =>
        tf.tidy(() => {
          const x = toInputTensor(
            members.map((m) => m.image),
            classifier.inputSize,
          );
          const y = tf.oneHot(
            tf.tensor1d(
              members.map((m) => CLASS_NAMES.indexOf(m.label)),
              'int32',
            ),
            CLASS_NAMES.length,
          );
          let correct: tf.Tensor | undefined;
          const cost = optimizer.minimize(
            () => {
              const logits = model.apply(x, { training: true }) as tf.Tensor;
              // minimize() disposes everything but the cost; keep the batch's hit count.
              correct = tf.keep(tf.sum(tf.equal(tf.argMax(logits, 1), tf.argMax(y, 1))));
              return tf.losses.softmaxCrossEntropy<tf.Tensor, tf.Scalar>(y, logits);
            },
            true,
            variables,
          )!;
          return [cost, correct!];
        }),
      );
      return {
        scalars,
        record: ([loss, correct]) => {
          history.loss.push(loss!);
          history.accuracy.push(correct! / members.length);
        },
      };
    };
    const snapshot = (batchesDone: number) =>
      captureState(trainables, {
        kind: 'classifier' as const,
        backbone,
        batchesDone,
        totalBatches,
        inputSize: classifier.inputSize,
        widthMultiplier: classifier.widthMultiplier,
        // A snapshot owns copies of the histories: training goes on appending to the live ones.
        history: { loss: [...history.loss], accuracy: [...history.accuracy] },
      });
    const trained = await runStepLoop<ClassifierMeta>({
      total: totalBatches,
      done: options.resume?.meta.batchesDone ?? 0,
      checkpointEvery: classifier.checkpointEvery,
      checkpointIntervalMs: options.checkpointIntervalMs,
      step,
      snapshot,
      onProgress: options.onProgress,
      onCheckpoint: options.onCheckpoint,
      signal: options.signal,
    });
    // Inference-time batch-norm statistics for the final weights (why: lib/training/batchnorm.ts).
    await recalibrateBatchNorm(
      model,
      Array.from(
        { length: batchesPerEpoch },
        (_, b) => () =>
          toInputTensor(
            options.train.slice(b * classifier.batchSize, (b + 1) * classifier.batchSize).map((m) => m.image),
            classifier.inputSize,
          ),
      ),
    );
    return { model, state: await snapshot(trained.meta.batchesDone) };
  } catch (err) {
    // The model is the caller's on success only: a failed or cancelled step must not leave it behind.
    model.dispose();
    throw err;
  } finally {
    optimizer.dispose();
  }
}

/** Rebuilds a fine-tuned classifier from its checkpoint. */
export function loadClassifier(
  state: TrainingState<ClassifierMeta>,
  classifier: PipelineConfig['classifier'],
): tf.LayersModel {
  const model = buildClassifier(
    state.meta.backbone,
    { ...classifier, inputSize: state.meta.inputSize, widthMultiplier: state.meta.widthMultiplier },
    0,
  );
  try {
    restoreModelWeights(model, state.groups.model ?? [], `${state.meta.backbone} checkpoint`);
  } catch (err) {
    model.dispose();
    throw err;
  }
  return model;
}

export interface Evaluation {
  metrics: ClassificationMetrics;
  /** Predicted class index per test image, in input order. */
  predictions: number[];
  /** Softmax probability of PNEUMONIA per test image, in input order (for AUC and calibration). */
  probabilities: number[];
}

export async function evaluateClassifier(
  model: tf.LayersModel,
  test: readonly LabelledPixels[],
  inputSize: number,
  batchSize = 64,
  /** Called after each batch (evaluation of a large test set takes minutes); a signal stops it between batches. */
  watch: { onProgress?: (done: number, total: number) => void; signal?: AbortSignal } = {},
): Promise<Evaluation> {
  const positive = CLASS_NAMES.indexOf('PNEUMONIA');
  const probabilities: number[] = [];
  for (let start = 0; start < test.length; start += batchSize) {
    watch.signal?.throwIfAborted();
    const batch = test.slice(start, start + batchSize);
    const probability = tf.tidy(() =>
      tf
        .softmax(
          model.predict(
            toInputTensor(
              batch.map((b) => b.image),
              inputSize,
            ),
          ) as tf.Tensor2D,
        )
        .slice([0, positive], [-1, 1])
        .reshape([-1]),
    );
    probabilities.push(...(await takeData(probability)));
    watch.onProgress?.(probabilities.length, test.length);
    await yieldToEventLoop();
  }
  // argmax of two softmax outputs: PNEUMONIA when its probability is above one half (ties: NORMAL, as argMax).
  const predictions = probabilities.map((p) => (p > 0.5 ? positive : 1 - positive));
  const truth = test.map((t) => CLASS_NAMES.indexOf(t.label));
  return { metrics: metricsFromConfusion(confusionMatrix(truth, predictions)), predictions, probabilities };
}
