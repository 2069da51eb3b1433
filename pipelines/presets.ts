/**
 * Named pipeline configurations. Every value the paper does not state is chosen here and
 * justified in a comment, so the report can show exactly what ran.
 */
import { parsePipelineConfig, type DataSource, type PipelineConfig } from './schema.js';

/** The paper at full size, for GPU workers (tfjs-node-gpu). */
const paper: PipelineConfig = {
  preset: 'paper',
  data: {
    // Users point --data at the real `chest_xray` archive; synthetic is only a fallback.
    source: { kind: 'synthetic', imagesPerClass: 3000, seed: 7 },
    // The backbones' native input size; 224 also holds the 64 px GAN input without upsampling.
    storeSize: 224,
  },
  protocol: {
    trialSeeds: [1, 2, 3],
    // Exactly 624 real images per trial (10.64% of 5,863), as the paper reports.
    subsetSize: 624,
    syntheticPerReal: 9,
    trainFraction: 0.8,
    evaluations: ['paper', 'heldout', 'no-gan'],
    // Used only without the archive's test split (624 images), which is the held-out set then.
    heldoutFraction: 0.1,
    heldoutSeed: 1000,
  },
  gan: {
    // Classic DCGAN (Radford et al.): 64 px, latent 100, 64 filters, Adam 2e-4 / beta1 0.5.
    imageSize: 64,
    latentDim: 100,
    generatorWidth: 64,
    discriminatorWidth: 64,
    batchSize: 64,
    // About 1,000 passes over a ~170-image class subset; GANs on tiny sets need many updates.
    steps: 3000,
    learningRate: 2e-4,
    beta1: 0.5,
    checkpointEvery: 200,
  },
  classifier: {
    backbones: ['alexnet', 'googlenet', 'squeezenet', 'resnet18'],
    inputSize: 224,
    widthMultiplier: 1,
    epochs: 10,
    batchSize: 32,
    // A fine-tuning rate for Adam; the paper (MATLAB) does not state its optimiser.
    learningRate: 1e-4,
    dropout: 0.5,
    // Point these at torchvision's ImageNet weights converted to safetensors (README, "Models");
    // they cannot be downloaded here, so the preset starts from random weights until given.
    pretrained: {},
    freeze: 'none',
    checkpointEvery: 50,
  },
  analysis: {
    // Every backbone again on the resolution-matched pool: the paper's protocol without the sharpness cue.
    matchedResolution: ['alexnet', 'googlenet', 'squeezenet', 'resnet18'],
    detectability: true,
    memorization: true,
    bootstrapReplicates: 2000,
  },
};

/**
 * Same topology as `paper` (three trials, two GANs, four backbones, the same protocol) at a size
 * that finishes in a few minutes on two CPU cores with the native TensorFlow backend that
 * `npm run setup` provisions (the pure-JS fallback is about ten times slower).
 */
const smoke: PipelineConfig = {
  preset: 'smoke',
  data: {
    source: { kind: 'synthetic', imagesPerClass: 100, seed: 7 },
    storeSize: 64,
  },
  protocol: {
    trialSeeds: [1, 2, 3],
    // 10% of 200 synthetic images would leave 10 per class; 20% (20) keeps the split meaningful.
    subsetFraction: 0.2,
    syntheticPerReal: 9,
    trainFraction: 0.8,
    evaluations: ['paper', 'heldout', 'no-gan'],
    heldoutFraction: 0.2,
    heldoutSeed: 1000,
  },
  gan: {
    imageSize: 32,
    latentDim: 64,
    generatorWidth: 16,
    discriminatorWidth: 16,
    batchSize: 16,
    // With 20 images per class and DCGAN's 2e-4 the discriminator wins at once and the samples
    // stay noise; 1e-3 for 200 steps draws recognisable (if mode-collapsed) chest X-rays.
    steps: 200,
    learningRate: 1e-3,
    beta1: 0.5,
    checkpointEvery: 50,
  },
  classifier: {
    backbones: ['alexnet', 'googlenet', 'squeezenet', 'resnet18'],
    // AlexNet's smallest valid input is 63 px (its third max pool would otherwise see 1x1).
    inputSize: 64,
    widthMultiplier: 0.25,
    epochs: 3,
    batchSize: 16,
    learningRate: 1e-3,
    dropout: 0.2,
    pretrained: {},
    freeze: 'none',
    checkpointEvery: 10,
  },
  analysis: {
    // One backbone keeps the smoke run short while exercising the matched-resolution path.
    matchedResolution: ['resnet18'],
    detectability: true,
    memorization: true,
    bootstrapReplicates: 500,
  },
};

/**
 * The paper's data protocol unchanged (624-image subsets, 9x synthesis, 80/20 splits, three
 * trials, the three protocols, the held-out set), with models sized so that the three trials
 * finish in 45 minutes on two CPU cores with the native TensorFlow backend (measured on the
 * archive's train split, 5,216 images: 44 min 41 s wall, no process above 1.5 GB): run it on the
 * real archive with `--preset paper-cpu --data <chest_xray or kermany-train>`.
 */
const paperCpu: PipelineConfig = {
  preset: 'paper-cpu',
  data: {
    // Used only without --data: enough synthetic X-rays for a 624-image subset after the held-out set.
    source: { kind: 'synthetic', imagesPerClass: 500, seed: 7 },
    // Every model here reads 64 px (the DCGAN's output size), so storing more would only cost ingest time.
    storeSize: 64,
  },
  // The paper's data protocol itself (624-image subsets, 9x synthesis, 80/20, three trials, the
  // three protocols, the 10% held-out set), not a copy that could drift from it.
  protocol: paper.protocol,
  gan: {
    // The paper's DCGAN shape and output size (five 4x4 layers, 64 px, latent 100, Adam 2e-4 /
    // beta1 0.5) at half the filters: a quarter of the convolution work (about 4x the paper's
    // step rate on the CPU) while keeping the layer structure.
    imageSize: 64,
    latentDim: 100,
    generatorWidth: 32,
    discriminatorWidth: 32,
    batchSize: 32,
    // 800 steps are about 55 passes over a 463-image PNEUMONIA subset and 160 over 161 NORMAL
    // images. A step takes 0.42 s alone on two cores and 0.7 s beside the other class's GAN, as
    // the demo runs them (measured on kermany-train: 546 and 588 s per GAN), so the 6 GANs take
    // 29 of the run's 45 minutes; the rest goes to 24 fine-tunings and the analyses.
    steps: 800,
    learningRate: 2e-4,
    beta1: 0.5,
    checkpointEvery: 100,
  },
  classifier: {
    backbones: ['alexnet', 'googlenet', 'squeezenet', 'resnet18'],
    // At the GAN's own 64 px, real and generated images reach the classifier at the same
    // resolution (no upsampling that could tell them apart); 64 px is above AlexNet's 63 px minimum.
    inputSize: 64,
    // A quarter of each published width: the four topologies stay the published ones, and one
    // epoch over the 4,992 pooled training images takes 15 s (AlexNet) to 80 s (GoogLeNet).
    widthMultiplier: 0.25,
    // Three passes over 4,992 images (about 470 batches); the no-GAN models get the same number of passes.
    epochs: 3,
    batchSize: 32,
    // From random weights (no ImageNet weights can be fetched here): a from-scratch Adam rate.
    learningRate: 1e-3,
    dropout: 0.2,
    pretrained: {},
    freeze: 'none',
    checkpointEvery: 50,
  },
  analysis: {
    // Backbones read 64 px, the GAN's own resolution: real and generated images already match, so
    // a resolution-matched rerun would repeat the paper protocol.
    matchedResolution: [],
    detectability: true,
    memorization: true,
    bootstrapReplicates: 2000,
  },
};

export const PRESETS: Readonly<Record<string, PipelineConfig>> = { paper, 'paper-cpu': paperCpu, smoke };

export function presetNames(): string[] {
  return Object.keys(PRESETS);
}

/** A preset by name, optionally with a different data source, validated. */
export function resolvePreset(name: string, source?: DataSource): PipelineConfig {
  const preset = PRESETS[name];
  if (!preset) throw new Error(`Unknown preset "${name}"; choose one of: ${presetNames().join(', ')}`);
  const config = structuredClone(preset);
  if (source) config.data.source = source;
  return parsePipelineConfig(config, `preset "${name}"`);
}
