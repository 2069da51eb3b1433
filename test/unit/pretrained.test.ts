import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { BACKBONE_NAMES, buildBackbone, countParams, type BackboneName } from '../../lib/models/backbones/index.js';
import { exportTorchvisionWeights, loadTorchvisionWeights } from '../../lib/models/pretrained.js';

// ------------------------------------------------------------------------------------------
// Test-side torchvision state_dict construction: written independently of pretrained.ts (plain
// JS index loops for the layout changes, its own safetensors writer/reader).

interface TorchTensor {
  shape: number[];
  data: Float32Array;
}
type StateDict = Map<string, TorchTensor>;

const SIZE: Record<BackboneName, number> = { alexnet: 64, googlenet: 32, squeezenet: 32, resnet18: 32 };
const build = (name: BackboneName, opts: { width?: number; classes?: number } = {}): tf.LayersModel =>
  buildBackbone(name, {
    inputSize: SIZE[name],
    widthMultiplier: opts.width ?? 0.125,
    numClasses: opts.classes ?? 2,
    dropout: 0.5,
  });

const BN_NAMES = ['weight', 'bias', 'running_mean', 'running_var'];

/** The model's weights as a torchvision state_dict (torch layouts), plus its BatchNorm names. */
function stateDictOf(model: tf.LayersModel): { sd: StateDict; batchNorms: string[] } {
  const sd: StateDict = new Map();
  const batchNorms: string[] = [];
  for (const layer of model.layers) {
    const cls = layer.getClassName();
    const values = layer.getWeights().map((w) => ({ shape: w.shape, data: w.dataSync() as Float32Array }));
    if (values.length === 0) continue;
    if (cls === 'BatchNormalization') {
      batchNorms.push(layer.name);
      values.forEach((v, i) =>
        sd.set(`${layer.name}.${BN_NAMES[i]}`, { shape: v.shape, data: Float32Array.from(v.data) }),
      );
      continue;
    }
    const [kernel, bias] = values as [TorchTensor, TorchTensor | undefined];
    if (cls === 'Conv2D') {
      const [kh, kw, cin, cout] = kernel.shape as [number, number, number, number];
      const out = new Float32Array(kernel.data.length);
      for (let o = 0; o < cout; o++)
        for (let i = 0; i < cin; i++)
          for (let y = 0; y < kh; y++)
            for (let x = 0; x < kw; x++) {
              out[((o * cin + i) * kh + y) * kw + x] = kernel.data[((y * kw + x) * cin + i) * cout + o]!;
            }
      sd.set(`${layer.name}.weight`, { shape: [cout, cin, kh, kw], data: out });
    } else if (cls === 'Dense') {
      const [cin, cout] = kernel.shape as [number, number];
      const out = new Float32Array(kernel.data.length);
      for (let o = 0; o < cout; o++) for (let i = 0; i < cin; i++) out[o * cin + i] = kernel.data[i * cout + o]!;
      sd.set(`${layer.name}.weight`, { shape: [cout, cin], data: out });
    } else {
      throw new Error(`unexpected weighted layer ${layer.name} (${cls})`);
    }
    if (bias) sd.set(`${layer.name}.bias`, { shape: bias.shape, data: Float32Array.from(bias.data) });
  }
  return { sd, batchNorms };
}

function floatToHalf(v: number): number {
  const x = new Uint32Array(new Float32Array([v]).buffer)[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = ((x >>> 23) & 0xff) - 127 + 15;
  let mant = x & 0x7fffff;
  if (exp >= 0x1f) return sign | 0x7c00;
  if (exp <= 0) {
    if (exp < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - exp;
    let h = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && h & 1)) h++;
    return sign | h;
  }
  let h = (exp << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
  return sign | h;
}

type FileDtype = 'F32' | 'F16' | 'BF16';
interface RawTensor {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

function rawOf(t: TorchTensor, dtype: FileDtype): RawTensor {
  if (dtype === 'F32') return { dtype, shape: t.shape, bytes: new Uint8Array(Float32Array.from(t.data).buffer) };
  const bits = new Uint16Array(t.data.length);
  const u32 = new Uint32Array(Float32Array.from(t.data).buffer);
  for (let i = 0; i < bits.length; i++) bits[i] = dtype === 'F16' ? floatToHalf(t.data[i]!) : u32[i]! >>> 16;
  return { dtype, shape: t.shape, bytes: new Uint8Array(bits.buffer) };
}

/** A safetensors file, torchvision-style: the state dict plus I64 num_batches_tracked per BN. */
function fileOf(
  sd: StateDict,
  batchNorms: string[],
  dtype: FileDtype = 'F32',
  raw: Map<string, RawTensor> = new Map(),
): Uint8Array {
  const all = new Map<string, RawTensor>();
  for (const [name, t] of sd) all.set(name, rawOf(t, dtype));
  for (const bn of batchNorms) {
    all.set(`${bn}.num_batches_tracked`, {
      dtype: 'I64',
      shape: [],
      bytes: new Uint8Array(new BigInt64Array([123n]).buffer),
    });
  }
  for (const [name, t] of raw) all.set(name, t);
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const [name, t] of all) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.byteLength] };
    offset += t.bytes.byteLength;
  }
  // No padding on purpose: the loader must cope with unaligned tensor data.
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const t of all.values()) {
    out.set(t.bytes, at);
    at += t.bytes.byteLength;
  }
  return out;
}

function parseFile(bytes: Uint8Array): Map<string, RawTensor> {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const out = new Map<string, RawTensor>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    out.set(name, {
      dtype: e.dtype,
      shape: e.shape,
      bytes: bytes.slice(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]),
    });
  }
  return out;
}

/** Replaces A's weights with values that keep activations O(1) and exercise every BN slot. */
function randomise(model: tf.LayersModel, seed: number): void {
  let s = seed;
  const rnd = (): number => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
  for (const layer of model.layers) {
    const cls = layer.getClassName();
    const ws = layer.getWeights();
    if (ws.length === 0) continue;
    const fresh = ws.map((w, i) => {
      const n = w.size;
      const v = new Float32Array(n);
      if (cls === 'BatchNormalization') {
        // gamma, beta, moving_mean, moving_variance
        for (let j = 0; j < n; j++) v[j] = i === 0 || i === 3 ? 0.5 + rnd() : 0.4 * (rnd() - 0.5);
      } else if (i === 0) {
        const fanIn = w.shape.slice(0, -1).reduce((a, b) => a * b, 1);
        const bound = Math.sqrt(6 / fanIn);
        for (let j = 0; j < n; j++) v[j] = bound * (2 * rnd() - 1);
      } else {
        for (let j = 0; j < n; j++) v[j] = 0.2 * (rnd() - 0.5);
      }
      return tf.tensor(v, w.shape);
    });
    layer.setWeights(fresh);
    tf.dispose(fresh);
  }
}

function predict(model: tf.LayersModel, input: tf.Tensor): Float32Array {
  return tf.tidy(() => (model.predict(input) as tf.Tensor).dataSync() as Float32Array);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function weightsOf(model: tf.LayersModel): Float32Array[] {
  return model.getWeights().map((w) => Float32Array.from(w.dataSync()));
}

function loadError(load: () => unknown): string {
  try {
    load();
  } catch (e) {
    return (e as Error).message;
  }
  assert.fail('expected the load to throw');
}

// ------------------------------------------------------------------------------------------
// Round trips

for (const name of BACKBONE_NAMES) {
  test(`${name}: torchvision-layout file from model A loads into fresh model B with identical predictions`, () => {
    const a = build(name);
    randomise(a, 17);
    const { sd, batchNorms } = stateDictOf(a);
    const file = fileOf(sd, batchNorms);
    const input = tf.randomUniform([2, SIZE[name], SIZE[name], 3], -1, 1, 'float32', 5);
    const expected = predict(a, input);
    assert.ok(Math.max(...expected.map(Math.abs)) > 1e-2, 'A produces non-trivial logits');

    const b = build(name);
    assert.ok(maxAbsDiff(predict(b, input), expected) > 1e-3, 'B starts out different');
    const report = loadTorchvisionWeights(b, name, file, `test://${name}.safetensors`, { skipHead: false });
    assert.equal(report.loaded.length, sd.size);
    assert.deepEqual(report.skipped, []);
    assert.equal(report.ignored.length, batchNorms.length);
    assert.equal(report.parametersLoaded, countParams(b));
    assert.equal(
      report.valuesLoaded,
      [...sd.values()].reduce((n, t) => n + t.data.length, 0),
    );
    assert.deepEqual(report.dtypes, { F32: sd.size });

    const wa = weightsOf(a);
    weightsOf(b).forEach((w, i) => assert.equal(maxAbsDiff(w, wa[i]!), 0, `weight ${b.weights[i]!.originalName}`));
    const got = predict(b, input);
    const scale = Math.max(1, ...expected.map(Math.abs));
    assert.ok(maxAbsDiff(got, expected) <= 1e-5 * scale, `predictions differ by ${maxAbsDiff(got, expected)}`);

    // exportTorchvisionWeights writes exactly the test's state dict (names, shapes, layouts, data).
    const exported = parseFile(exportTorchvisionWeights(b, name));
    assert.equal(exported.size, sd.size + batchNorms.length);
    for (const [key, t] of sd) {
      const e = exported.get(key);
      assert.ok(e, `export has ${key}`);
      assert.equal(e.dtype, 'F32');
      assert.deepEqual(e.shape, t.shape, key);
      assert.equal(
        maxAbsDiff(new Float32Array(e.bytes.buffer, e.bytes.byteOffset, e.bytes.byteLength / 4), t.data),
        0,
        key,
      );
    }
    for (const bn of batchNorms) assert.equal(exported.get(`${bn}.num_batches_tracked`)?.dtype, 'I64');
    tf.dispose(input);
  });
}

test('skipHead (the default) keeps the fresh 2-class head and accepts a 1000-class one', () => {
  const source = build('squeezenet', { classes: 1000 });
  randomise(source, 3);
  const { sd, batchNorms } = stateDictOf(source);
  assert.deepEqual(sd.get('classifier.1.weight')!.shape, [1000, 64, 1, 1]);
  const target = build('squeezenet');
  const head = target.getLayer('classifier.1');
  const headBefore = head.getWeights().map((w) => Float32Array.from(w.dataSync()));
  const report = loadTorchvisionWeights(target, 'squeezenet', fileOf(sd, batchNorms), 'imagenet.safetensors');
  assert.deepEqual(report.skipped, ['classifier.1.weight', 'classifier.1.bias']);
  assert.equal(report.loaded.length, sd.size - 2);
  assert.equal(report.parametersLoaded, countParams(target) - (64 * 2 + 2));
  head.getWeights().forEach((w, i) => assert.equal(maxAbsDiff(w.dataSync(), headBefore[i]!), 0));
  const features = target.getLayer('features.12.expand3x3').getWeights()[0]!.dataSync();
  assert.equal(maxAbsDiff(features, source.getLayer('features.12.expand3x3').getWeights()[0]!.dataSync()), 0);

  // Without skipHead the 1000-class head is a shape mismatch, with a hint.
  const msg = loadError(() =>
    loadTorchvisionWeights(build('squeezenet'), 'squeezenet', fileOf(sd, batchNorms), 'imagenet.safetensors', {
      skipHead: false,
    }),
  );
  assert.match(msg, /classifier\.1\.weight is \[1000,64,1,1\] in the file, the model expects \[2,64,1,1\]/);
  assert.match(msg, /skipHead/);
  // A file without a head is fine when the head is skipped.
  sd.delete('classifier.1.weight');
  sd.delete('classifier.1.bias');
  const r2 = loadTorchvisionWeights(build('squeezenet'), 'squeezenet', fileOf(sd, batchNorms), 'headless');
  assert.deepEqual(r2.skipped, []);
});

// ------------------------------------------------------------------------------------------
// Hand-checked layouts (not just self-consistency)

test('resnet18 conv1.weight [out,in,kh,kw] lands as the right HWIO kernel (hand value + direct loop)', () => {
  const model = build('resnet18'); // conv1: 8 out, 3 in, 7x7, stride 2, padding 3
  const { sd, batchNorms } = stateDictOf(model);
  const conv1 = tf.model({ inputs: model.inputs, outputs: model.getLayer('conv1').output });
  const S = 32;
  // Input pixel (y, x, c) = 100*y + x + 0.01*c, so every value names its position.
  const img = new Float32Array(S * S * 3);
  for (let y = 0; y < S; y++)
    for (let x = 0; x < S; x++) for (let c = 0; c < 3; c++) img[(y * S + x) * 3 + c] = 100 * y + x + 0.01 * c;
  const input = tf.tensor4d(img, [1, S, S, 3]);

  // 1. A single one: torch weight[o=5][i=2][kh=1][kw=4] = 1. PyTorch: out[5][oy][ox] =
  //    in[c=2][2*oy + 1 - 3][2*ox + 4 - 3]; at (oy, ox) = (3, 2) that is pixel (4, 5, 2) = 405.02.
  const one = new Float32Array(8 * 3 * 7 * 7);
  one[((5 * 3 + 2) * 7 + 1) * 7 + 4] = 1;
  sd.set('conv1.weight', { shape: [8, 3, 7, 7], data: one });
  loadTorchvisionWeights(model, 'resnet18', fileOf(sd, batchNorms), 'one-hot', { skipHead: false });
  const out1 = (conv1.predict(input) as tf.Tensor4D).arraySync()[0]!;
  assert.ok(Math.abs(out1[3]![2]![5]! - 405.02) < 1e-3, `got ${out1[3]![2]![5]}`);
  for (let o = 0; o < 8; o++) if (o !== 5) assert.equal(out1[3]![2]![o], 0);
  assert.equal(out1[0]![2]![5], 0, 'row 2*0+1-3 = -2 is zero padding');
  assert.ok(Math.abs(out1[15]![15]![5]! - (100 * 28 + 31 + 0.02)) < 1e-3);

  // 2. A dense, asymmetric pattern against PyTorch's conv definition written out as a loop.
  const w = new Float32Array(8 * 3 * 7 * 7);
  for (let o = 0; o < 8; o++)
    for (let i = 0; i < 3; i++)
      for (let kh = 0; kh < 7; kh++)
        for (let kw = 0; kw < 7; kw++) {
          w[((o * 3 + i) * 7 + kh) * 7 + kw] = Math.sin(1 + o * 1.7 + i * 0.9 + kh * 0.37 + kw * 0.11) / 50;
        }
  sd.set('conv1.weight', { shape: [8, 3, 7, 7], data: w });
  loadTorchvisionWeights(model, 'resnet18', fileOf(sd, batchNorms), 'pattern', { skipHead: false });
  const small = tf.randomUniform([1, S, S, 3], -1, 1, 'float32', 9);
  const px = small.dataSync();
  const out2 = (conv1.predict(small) as tf.Tensor4D).dataSync();
  let worst = 0;
  for (let oy = 0; oy < 16; oy++)
    for (let ox = 0; ox < 16; ox++)
      for (let o = 0; o < 8; o++) {
        let acc = 0;
        for (let i = 0; i < 3; i++)
          for (let kh = 0; kh < 7; kh++)
            for (let kw = 0; kw < 7; kw++) {
              const y = 2 * oy + kh - 3;
              const x = 2 * ox + kw - 3;
              if (y < 0 || y >= S || x < 0 || x >= S) continue;
              acc += w[((o * 3 + i) * 7 + kh) * 7 + kw]! * px[(y * S + x) * 3 + i]!;
            }
        worst = Math.max(worst, Math.abs(acc - out2[(oy * 16 + ox) * 8 + o]!));
      }
  assert.ok(worst < 1e-5, `conv1 differs from the direct loop by ${worst}`);
  tf.dispose([input, small]);
});

test('alexnet classifier.1.weight [out,in] over the channel-first flatten (hand value + direct loop)', () => {
  const model = build('alexnet'); // features end with 32 channels, 6x6 avgpool, classifier.1: 1152 -> 512
  const { sd, batchNorms } = stateDictOf(model);
  const probe = tf.model({
    inputs: model.inputs,
    outputs: [
      model.getLayer('avgpool').output as tf.SymbolicTensor,
      model.getLayer('classifier.1').output as tf.SymbolicTensor,
    ],
  });
  const input = tf.randomUniform([1, 64, 64, 3], 0, 1, 'float32', 11);
  const run = (): { a: Float32Array; y: Float32Array } => {
    const [a, y] = probe.predict(input) as tf.Tensor[];
    return { a: a!.dataSync() as Float32Array, y: y!.dataSync() as Float32Array };
  };
  const C = 32;
  const IN = C * 36;
  const OUT = 512;
  assert.deepEqual(sd.get('classifier.1.weight')!.shape, [OUT, IN]);
  const { a } = run(); // NHWC [1, 6, 6, 32]; the features are not touched below
  const at = (h: number, w: number, c: number): number => a[(h * 6 + w) * C + c]!;

  // 1. One weight: W[7][c*36 + h*6 + w] = 2 at the largest activation, bias[7] = 0.25, other
  //    biases -1 (so every other unit is ReLU(-1) = 0). PyTorch: y[7] = relu(2*a[c][h][w] + 0.25).
  let best = { h: 0, w: 0, c: 0, v: -1 };
  for (let h = 0; h < 6; h++)
    for (let w = 0; w < 6; w++)
      for (let c = 0; c < C; c++) if (at(h, w, c) > best.v) best = { h, w, c, v: at(h, w, c) };
  assert.ok(best.v > 0);
  const W = new Float32Array(OUT * IN);
  W[7 * IN + best.c * 36 + best.h * 6 + best.w] = 2;
  const bias = new Float32Array(OUT).fill(-1);
  bias[7] = 0.25;
  sd.set('classifier.1.weight', { shape: [OUT, IN], data: W });
  sd.set('classifier.1.bias', { shape: [OUT], data: bias });
  loadTorchvisionWeights(model, 'alexnet', fileOf(sd, batchNorms), 'one-hot', { skipHead: false });
  const y1 = run().y;
  assert.ok(Math.abs(y1[7]! - (2 * best.v + 0.25)) < 1e-5, `got ${y1[7]}, want ${2 * best.v + 0.25}`);
  assert.equal(y1.filter((v, i) => i !== 7 && v !== 0).length, 0);

  // 2. A dense pattern against the direct definition y = relu(W @ flatten_CHW(a) + b).
  for (let o = 0; o < OUT; o++) for (let j = 0; j < IN; j++) W[o * IN + j] = Math.sin(o * 1.3 + j * 0.7) / 20;
  for (let o = 0; o < OUT; o++) bias[o] = Math.cos(o) / 10;
  loadTorchvisionWeights(model, 'alexnet', fileOf(sd, batchNorms), 'pattern', { skipHead: false });
  const y2 = run().y;
  let worst = 0;
  for (let o = 0; o < OUT; o++) {
    let acc = bias[o]!;
    for (let c = 0; c < C; c++)
      for (let h = 0; h < 6; h++) for (let w = 0; w < 6; w++) acc += W[o * IN + c * 36 + h * 6 + w]! * at(h, w, c);
    worst = Math.max(worst, Math.abs(Math.max(0, acc) - y2[o]!));
  }
  assert.ok(worst < 1e-4, `classifier.1 differs from the direct loop by ${worst}`);
  tf.dispose(input);
});

// ------------------------------------------------------------------------------------------
// Errors and dtypes

test('a file made at another width is rejected, naming the tensor and both shapes, model untouched', () => {
  const wide = stateDictOf(build('resnet18', { width: 0.25 }));
  const model = build('resnet18');
  const before = weightsOf(model);
  const msg = loadError(() =>
    loadTorchvisionWeights(
      model,
      'resnet18',
      fileOf(wide.sd, wide.batchNorms),
      's3://bucket/resnet18-w025.safetensors',
    ),
  );
  assert.match(
    msg,
    /^s3:\/\/bucket\/resnet18-w025\.safetensors: cannot load torchvision resnet18 weights, 101 problems: 101 shape mismatch \(no weights were changed\):\n/,
  );
  assert.match(msg, /shape mismatch: conv1\.weight is \[16,3,7,7\] in the file, the model expects \[8,3,7,7\]/);
  assert.match(msg, /\.\.\. and \d+ more/);
  assert.match(msg, /widthMultiplier/);
  assert.equal(msg.split('\n').filter((l) => l.startsWith('  - ')).length, 10);
  weightsOf(model).forEach((w, i) => assert.equal(maxAbsDiff(w, before[i]!), 0));
});

test('missing and unexpected tensors are rejected', () => {
  const model = build('resnet18');
  const { sd, batchNorms } = stateDictOf(model);
  const withoutVar = new Map(sd);
  withoutVar.delete('layer1.0.bn1.running_var');
  const m1 = loadError(() =>
    loadTorchvisionWeights(model, 'resnet18', fileOf(withoutVar, batchNorms), 'missing.safetensors'),
  );
  assert.match(m1, /^missing\.safetensors: cannot load torchvision resnet18 weights, 1 problem: 1 missing \(/);
  assert.match(m1, /missing: layer1\.0\.bn1\.running_var \(expected \[8\]\)/);

  const extra = new Map(sd);
  extra.set('layer5.0.conv1.weight', { shape: [8, 8, 3, 3], data: new Float32Array(576) });
  const m2 = loadError(() => loadTorchvisionWeights(model, 'resnet18', fileOf(extra, batchNorms), 'extra.safetensors'));
  assert.match(m2, /unexpected: layer5\.0\.conv1\.weight \(F32 \[8,8,3,3\]\) matches no layer/);

  // num_batches_tracked of an unknown module is unexpected too; a weight in I32 is refused.
  const m3 = loadError(() =>
    loadTorchvisionWeights(
      model,
      'resnet18',
      fileOf(
        sd,
        [...batchNorms, 'bn9'],
        'F32',
        new Map([['fc.bias', { dtype: 'I32', shape: [2], bytes: new Uint8Array(8) }]]),
      ),
      'odd.safetensors',
      { skipHead: false },
    ),
  );
  assert.match(m3, /unexpected: bn9\.num_batches_tracked/);
  assert.match(m3, /unsupported dtype: fc\.bias is I32/);

  const m4 = loadError(() =>
    loadTorchvisionWeights(model, 'resnet18', fileOf(sd, batchNorms).subarray(0, 100), 'truncated'),
  );
  assert.match(m4, /^truncated is not a valid safetensors file/);
});

test('resnet18 weights into squeezenet: the wrong architecture is named', () => {
  const { sd, batchNorms } = stateDictOf(build('resnet18'));
  const msg = loadError(() =>
    loadTorchvisionWeights(build('squeezenet'), 'squeezenet', fileOf(sd, batchNorms), 'resnet18.safetensors'),
  );
  assert.match(
    msg,
    /^resnet18\.safetensors: cannot load torchvision squeezenet weights, \d+ problems: \d+ missing, \d+ unexpected \(/,
  );
  assert.match(msg, /missing: features\.0\.weight \(expected \[8,3,3,3\]\)/);
  assert.match(msg, /\.\.\. and \d+ more/);
  assert.match(msg, /hint: the file looks like resnet18 weights, not squeezenet/);
});

test('F16 and BF16 files are converted (hand-checked bit patterns)', () => {
  const a = build('resnet18');
  randomise(a, 29);
  const { sd, batchNorms } = stateDictOf(a);
  // bn1.weight (8 channels) given as explicit half bit patterns.
  const f16Bits = [0x3c00, 0x3800, 0xc000, 0x7bff, 0x0001, 0x3555, 0x8000, 0x4248];
  const f16Want = [1, 0.5, -2, 65504, 2 ** -24, 0.333251953125, -0, 3.140625];
  const b = build('resnet18');
  const r = loadTorchvisionWeights(
    b,
    'resnet18',
    fileOf(
      sd,
      batchNorms,
      'F16',
      new Map([['bn1.weight', { dtype: 'F16', shape: [8], bytes: new Uint8Array(new Uint16Array(f16Bits).buffer) }]]),
    ),
    'half.safetensors',
    { skipHead: false },
  );
  assert.deepEqual(r.dtypes, { F16: sd.size });
  assert.deepEqual(Array.from(b.getLayer('bn1').getWeights()[0]!.dataSync()), f16Want);
  // Everything else is within half precision of A's values (relative 2^-11).
  const want = stateDictOf(a).sd;
  const got = stateDictOf(b).sd;
  for (const [key, t] of got) {
    if (key === 'bn1.weight') continue;
    const ref = want.get(key)!.data;
    t.data.forEach((v, i) =>
      assert.ok(Math.abs(v - ref[i]!) <= Math.abs(ref[i]!) * 2 ** -11 + 2 ** -24, `${key}[${i}]: ${v} vs ${ref[i]}`),
    );
  }

  const bf16Bits = [0x3f80, 0xc040, 0x3eab, 0x0000, 0x4049, 0xbf00, 0x4180, 0x3c00];
  const bf16Want = [1, -3, 0.333984375, 0, 3.140625, -0.5, 16, 2 ** -7];
  const c = build('resnet18');
  const r2 = loadTorchvisionWeights(
    c,
    'resnet18',
    fileOf(
      sd,
      batchNorms,
      'BF16',
      new Map([['bn1.weight', { dtype: 'BF16', shape: [8], bytes: new Uint8Array(new Uint16Array(bf16Bits).buffer) }]]),
    ),
    'bf16.safetensors',
  );
  assert.equal(r2.dtypes.BF16, sd.size - 2);
  assert.deepEqual(Array.from(c.getLayer('bn1').getWeights()[0]!.dataSync()), bf16Want);
});
