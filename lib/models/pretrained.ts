/**
 * ImageNet-pretrained torchvision weights for the backbones of `backbones.ts`, read from (and
 * written to) plain safetensors files whose tensor names and layouts are torchvision's own
 * `state_dict()`.
 *
 * Producing a file from the published weights (Python, torch + torchvision + safetensors):
 *
 *   import torchvision; from safetensors.torch import save_file
 *   save_file({k: v.contiguous() for k, v in torchvision.models.resnet18(weights='IMAGENET1K_V1').state_dict().items()}, 'resnet18.safetensors')
 *
 * (`save_file(model.state_dict(), ...)` is enough when every tensor is already contiguous;
 * safetensors refuses non-contiguous or shared tensors, hence the `.contiguous()`.) The same
 * line works for `alexnet(weights='IMAGENET1K_V1')`, `squeezenet1_1(weights='IMAGENET1K_V1')`
 * and `googlenet(weights='IMAGENET1K_V1')`. torchvision's GoogLeNet removes its auxiliary
 * classifiers unless `aux_logits=True` is passed; a file that still has `aux1.*` / `aux2.*` is
 * rejected (unexpected tensors), so leave them out.
 *
 * File format: lib/safetensors.ts. Accepted dtypes for loaded tensors: F32, and F16 / BF16 / F64
 * converted to float32 on load (published weights are sometimes half precision).
 *
 * Mapping (tfjs layer `<path>` owns torchvision's `<path>.*`; see backbones/index.ts):
 *   conv   `<path>.weight` [out, in, kh, kw]  -> Conv2D kernel [kh, kw, in, out]
 *   linear `<path>.weight` [out, in]          -> Dense kernel  [in, out]
 *   conv/linear `<path>.bias` [out]           -> bias, unchanged
 *   BatchNorm `<path>.weight` / `.bias` / `.running_mean` / `.running_var`
 *                                             -> gamma / beta / moving_mean / moving_variance
 *   `<path>.num_batches_tracked` (an I64 counter PyTorch keeps)  -> ignored
 * AlexNet's `classifier.1` needs nothing beyond the transpose: the tfjs graph flattens its
 * feature map in PyTorch's channel-major (C, H, W) order.
 *
 * Head: `skipHead` (default true: the paper replaces the last layer with a 2-class head) leaves
 * the classification head -- AlexNet `classifier.6`, GoogLeNet `fc`, SqueezeNet `classifier.1`
 * (a 1x1 conv), ResNet18 `fc` -- at its fresh initialisation; the file's head may have any
 * number of classes (ImageNet's 1000) or be absent, but its input dimensions must still fit.
 *
 * Every name, shape and dtype is checked before any weight is assigned; all problems are
 * reported in one Error that names the file (first 10, then a count), and the model is left
 * untouched when it throws.
 *
 * Preprocessing: our classifier pipeline (lib/training/classifier.ts) replicates the grayscale
 * X-ray to 3 channels, scales to [0, 1] and normalises with ImageNet mean (0.485, 0.456, 0.406)
 * / std (0.229, 0.224, 0.225) -- what torchvision's AlexNet, SqueezeNet and ResNet weights
 * expect. torchvision's pretrained GoogLeNet additionally sets `transform_input=True`: its
 * forward() first maps each channel back from ImageNet statistics to (x - 0.5) / 0.5, i.e.
 * x_c' = x_c * std_c / 0.5 + (mean_c - 0.5) / 0.5, roughly [-1, 1] per channel, because the
 * original weights were ported from a model trained on that range. Our GoogLeNet graph does
 * NOT do this (nothing here implements it); for faithful pretrained GoogLeNet features feed it
 * (pixel / 255 - 0.5) / 0.5 instead, or accept the small shift that fine-tuning absorbs.
 */
import * as tf from '@tensorflow/tfjs';
import {
  FLOAT_DTYPES,
  readSafetensors,
  shapeText,
  toFloat32,
  writeSafetensors,
  type PlainTensor,
  type SafetensorsEntry,
} from '../safetensors.js';
import { BACKBONE_NAMES, isBackboneName, type BackboneName } from './backbones/index.js';

/** The module path of each backbone's final classification layer in torchvision. */
export const TORCHVISION_HEADS: Record<BackboneName, string> = {
  alexnet: 'classifier.6',
  googlenet: 'fc',
  squeezenet: 'classifier.1',
  resnet18: 'fc',
};

export interface LoadOptions {
  /**
   * Keep the model's classification head at its fresh initialisation and ignore the file's
   * (any class count, or none). Default true: fine-tuning replaces the 1000-class head.
   */
  skipHead?: boolean;
}

export interface LoadReport {
  backbone: BackboneName;
  origin: string;
  /** torchvision names of the tensors written into the model, in model order. */
  loaded: string[];
  /** Head tensors found in the file and left out because of `skipHead`. */
  skipped: string[];
  /** Tensors ignored by rule (BatchNorm `num_batches_tracked`). */
  ignored: string[];
  /** Trainable parameters written (PyTorch `parameters()` numel; BN running stats excluded). */
  parametersLoaded: number;
  /** All values written, BN running mean/variance included. */
  valuesLoaded: number;
  /** How many loaded tensors came in each file dtype (F16/BF16/F64 were converted). */
  dtypes: Record<string, number>;
}

// ---------------------------------------------------------------------------------------------
// Model <-> torchvision name table

type Layout = 'conv' | 'linear' | 'vector';

interface TorchSlot {
  /** torchvision state_dict key. */
  name: string;
  /** Owning module path (= tfjs layer name). */
  layer: string;
  variable: tf.LayerVariable;
  layout: Layout;
  /** Shape in torchvision's layout. */
  torchShape: number[];
  trainable: boolean;
}

const BN_SUFFIX: Record<string, string> = {
  gamma: 'weight',
  beta: 'bias',
  moving_mean: 'running_mean',
  moving_variance: 'running_var',
};

function slotsOf(model: tf.LayersModel, backbone: BackboneName): { slots: TorchSlot[]; batchNorms: string[] } {
  if (!isBackboneName(backbone)) {
    throw new Error(`Unknown backbone "${String(backbone)}"; valid names: ${BACKBONE_NAMES.join(', ')}`);
  }
  const head = TORCHVISION_HEADS[backbone];
  if (!model.layers.some((l) => l.name === head)) {
    throw new Error(`model "${model.name}" has no layer "${head}": it is not a ${backbone} from buildBackbone`);
  }
  const slots: TorchSlot[] = [];
  const batchNorms: string[] = [];
  for (const layer of model.layers) {
    if (layer.weights.length === 0) continue;
    const cls = layer.getClassName();
    if (cls === 'BatchNormalization') batchNorms.push(layer.name);
    for (const variable of layer.weights) {
      const role = variable.originalName.slice(variable.originalName.lastIndexOf('/') + 1);
      const shape = variable.shape as number[];
      let suffix: string | undefined;
      let layout: Layout = 'vector';
      let torchShape = shape;
      if (cls === 'Conv2D' || cls === 'Dense') {
        if (role === 'bias') suffix = 'bias';
        else if (role === 'kernel') {
          suffix = 'weight';
          if (cls === 'Conv2D') {
            layout = 'conv';
            const [kh, kw, cin, cout] = shape as [number, number, number, number];
            torchShape = [cout, cin, kh, kw];
          } else {
            layout = 'linear';
            const [cin, cout] = shape as [number, number];
            torchShape = [cout, cin];
          }
        }
      } else if (cls === 'BatchNormalization') {
        suffix = BN_SUFFIX[role];
      }
      if (suffix === undefined) {
        throw new Error(
          `layer "${layer.name}" (${cls}) has weight "${variable.originalName}" with no torchvision ` +
            'equivalent; only Conv2D, Dense and BatchNormalization weights can be mapped',
        );
      }
      slots.push({
        name: `${layer.name}.${suffix}`,
        layer: layer.name,
        variable,
        layout,
        torchShape,
        trainable: variable.trainable,
      });
    }
  }
  return { slots, batchNorms };
}

/** The backbone whose torchvision tensor names occur in `names`, if any. */
export function likelyBackbone(names: Iterable<string>): BackboneName | undefined {
  const set = new Set(names);
  if (set.has('layer1.0.conv1.weight')) return 'resnet18';
  if (set.has('inception3a.branch1.conv.weight')) return 'googlenet';
  if (set.has('features.3.squeeze.weight')) return 'squeezenet';
  if (set.has('classifier.4.weight')) return 'alexnet';
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Load

const MAX_LISTED_PROBLEMS = 10;

/**
 * Loads torchvision `state_dict()` weights (plain safetensors, see the top comment) into a
 * model from `buildBackbone(backbone, ...)`. Validates everything first; on any problem throws
 * one Error naming `origin` and listing the problems, without changing the model.
 */
export function loadTorchvisionWeights(
  model: tf.LayersModel,
  backbone: BackboneName,
  source: Uint8Array,
  origin: string,
  options: LoadOptions = {},
): LoadReport {
  const skipHead = options.skipHead ?? true;
  const head = TORCHVISION_HEADS[backbone];
  const { slots, batchNorms } = slotsOf(model, backbone);
  const { tensors } = readSafetensors(source, origin);

  const problems: string[] = [];
  const shapeProblems: string[] = [];
  const skipped: string[] = [];
  const ignored: string[] = [];
  const expected = new Set(slots.map((s) => s.name));
  const ignorable = new Set(batchNorms.map((b) => `${b}.num_batches_tracked`));
  const toLoad: Array<{ slot: TorchSlot; entry: SafetensorsEntry }> = [];

  for (const slot of slots) {
    const entry = tensors.get(slot.name);
    const isHead = slot.layer === head;
    if (entry === undefined) {
      if (!(isHead && skipHead)) problems.push(`missing: ${slot.name} (expected ${shapeText(slot.torchShape)})`);
      continue;
    }
    if (!FLOAT_DTYPES.has(entry.dtype)) {
      problems.push(`unsupported dtype: ${slot.name} is ${entry.dtype} (expected F32, F16, BF16 or F64)`);
      continue;
    }
    if (isHead && skipHead) {
      // Any class count is fine (dim 0); the input dimensions must still match the model.
      const fits =
        entry.shape.length === slot.torchShape.length &&
        entry.shape.every((d, i) => i === 0 || d === slot.torchShape[i]);
      if (!fits) {
        const p =
          `shape mismatch: ${slot.name} is ${shapeText(entry.shape)} in the file, the model's head takes ` +
          `${shapeText(['*', ...slot.torchShape.slice(1)])}`;
        problems.push(p);
        shapeProblems.push(p);
      } else {
        skipped.push(slot.name);
      }
      continue;
    }
    if (shapeText(entry.shape) !== shapeText(slot.torchShape)) {
      const hint = isHead ? " (the classification head: pass skipHead: true to keep the model's fresh head)" : '';
      const p =
        `shape mismatch: ${slot.name} is ${shapeText(entry.shape)} in the file, the model expects ` +
        `${shapeText(slot.torchShape)}${hint}`;
      problems.push(p);
      shapeProblems.push(p);
      continue;
    }
    toLoad.push({ slot, entry });
  }
  for (const [name, entry] of tensors) {
    if (expected.has(name)) continue;
    if (ignorable.has(name)) {
      ignored.push(name);
      continue;
    }
    problems.push(`unexpected: ${name} (${entry.dtype} ${shapeText(entry.shape)}) matches no layer of the model`);
  }

  // Decode (and reject non-finite values) before touching the model.
  const decoded: Float32Array[] = [];
  if (problems.length === 0) {
    for (const { slot, entry } of toLoad) {
      const values = toFloat32(entry);
      const bad = values.findIndex((v) => !Number.isFinite(v));
      if (bad >= 0) problems.push(`non-finite value: ${slot.name}[${bad}] is ${values[bad]}`);
      decoded.push(values);
    }
  }

  if (problems.length > 0) {
    const hints: string[] = [];
    const guess = likelyBackbone(tensors.keys());
    if (guess !== undefined && guess !== backbone) hints.push(`the file looks like ${guess} weights, not ${backbone}`);
    else if (toLoad.length === 0 && !slots.some((s) => tensors.has(s.name))) {
      hints.push(`none of the model's tensor names occur in the file: is it a torchvision ${backbone} state_dict?`);
    }
    if (shapeProblems.length > 0 && guess === backbone) {
      hints.push(
        'shape mismatches usually mean the file was made at another widthMultiplier ' +
          "(torchvision's published weights need widthMultiplier 1)",
      );
    }
    const listed = problems.slice(0, MAX_LISTED_PROBLEMS).map((p) => `  - ${p}`);
    if (problems.length > MAX_LISTED_PROBLEMS) listed.push(`  ... and ${problems.length - MAX_LISTED_PROBLEMS} more`);
    const kinds = new Map<string, number>();
    for (const p of problems) {
      const kind = p.slice(0, p.indexOf(':'));
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
    const byKind = [...kinds].map(([k, n]) => `${n} ${k}`).join(', ');
    throw new Error(
      `${origin}: cannot load torchvision ${backbone} weights, ${problems.length} problem` +
        `${problems.length === 1 ? '' : 's'}: ${byKind} (no weights were changed):\n${listed.join('\n')}` +
        (hints.length > 0 ? `\n${hints.map((h) => `  hint: ${h}`).join('\n')}` : ''),
    );
  }

  const report: LoadReport = {
    backbone,
    origin,
    loaded: [],
    skipped,
    ignored,
    parametersLoaded: 0,
    valuesLoaded: 0,
    dtypes: {},
  };
  toLoad.forEach(({ slot, entry }, i) => {
    const values = decoded[i]!;
    tf.tidy(() => {
      let t: tf.Tensor = tf.tensor(values, slot.torchShape, 'float32');
      if (slot.layout === 'conv')
        t = tf.transpose(t, [2, 3, 1, 0]); // [out,in,kh,kw] -> [kh,kw,in,out]
      else if (slot.layout === 'linear') t = tf.transpose(t, [1, 0]); // [out,in] -> [in,out]
      slot.variable.write(t);
    });
    report.loaded.push(slot.name);
    report.valuesLoaded += values.length;
    if (slot.trainable) report.parametersLoaded += values.length;
    report.dtypes[entry.dtype] = (report.dtypes[entry.dtype] ?? 0) + 1;
  });
  return report;
}

// ---------------------------------------------------------------------------------------------
// Export

/**
 * The model's weights as a torchvision-named, torchvision-layout safetensors file (F32, plus an
 * I64 `num_batches_tracked` = 0 per BatchNorm so PyTorch's strict `load_state_dict` accepts it).
 * The head has the model's own class count; in PyTorch build the net with that `num_classes`
 * (and widthMultiplier 1 for torchvision's own classes). The inverse of loadTorchvisionWeights.
 */
export function exportTorchvisionWeights(model: tf.LayersModel, backbone: BackboneName): Uint8Array {
  const { slots, batchNorms } = slotsOf(model, backbone);
  const tensors: PlainTensor[] = slots.map((slot) => {
    const data = tf.tidy(() => {
      let t = slot.variable.read();
      if (slot.layout === 'conv')
        t = tf.transpose(t, [3, 2, 0, 1]); // [kh,kw,in,out] -> [out,in,kh,kw]
      else if (slot.layout === 'linear') t = tf.transpose(t, [1, 0]);
      return t.dataSync() as Float32Array;
    });
    return { name: slot.name, dtype: 'F32' as const, shape: slot.torchShape, data: Float32Array.from(data) };
  });
  for (const bn of batchNorms) {
    tensors.push({ name: `${bn}.num_batches_tracked`, dtype: 'I64', shape: [], data: new BigInt64Array(1) });
  }
  return writeSafetensors(tensors, { format: 'pt', producer: 'pneumogan', backbone });
}
