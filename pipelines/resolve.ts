/**
 * The effective configuration of a run: a preset, then a config file (JSON or YAML, any subset
 * of the schema's fields), then `--data`, then `--set key.path=value` overrides, validated once
 * by the one schema. Objects merge field by field; arrays and scalars replace; null removes a field.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { PRESETS, presetNames } from './presets.js';
import { ConfigError, parsePipelineConfig, type DataSource, type PipelineConfig } from './schema.js';

export interface ConfigSources {
  /** A preset name; defaults to the file's `preset` field, else `smoke`. */
  preset?: string;
  /** Path of a JSON or YAML file with any part of the configuration. */
  file?: string;
  data?: DataSource;
  /** `key.path=value` overrides; values are read as YAML (2, true, [1, 2]); `null` removes the field. */
  sets?: readonly string[];
}

type Tree = Record<string, unknown>;
const isTree = (value: unknown): value is Tree => typeof value === 'object' && value !== null && !Array.isArray(value);

export async function resolveConfig(sources: ConfigSources): Promise<PipelineConfig> {
  const fromFile = sources.file ? await readConfigFile(sources.file) : {};
  const presetName = sources.preset ?? (typeof fromFile.preset === 'string' ? fromFile.preset : 'smoke');
  const preset = PRESETS[presetName];
  if (!preset) throw new ConfigError(`Unknown preset "${presetName}"; choose one of: ${presetNames().join(', ')}`);
  let merged = deepMerge(structuredClone(preset), fromFile);
  merged.preset = presetName;
  if (sources.data) (merged.data as Tree).source = sources.data;
  for (const assignment of sources.sets ?? []) merged = applySet(merged, assignment);
  const origin = [
    `preset "${presetName}"`,
    sources.file && `file ${sources.file}`,
    sources.sets?.length && '--set overrides',
  ]
    .filter(Boolean)
    .join(' + ');
  return parsePipelineConfig(merged, `configuration (${origin})`);
}

async function readConfigFile(file: string): Promise<Tree> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`Cannot read the config file ${path.resolve(file)}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let value: unknown;
  try {
    // YAML 1.2 is a superset of JSON, so one parser reads both.
    value = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`The config file ${file} is not valid JSON or YAML: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (value === null || value === undefined) return {};
  if (!isTree(value))
    throw new ConfigError(`The config file ${file} must hold a mapping of fields (e.g. "gan: {steps: 500}")`);
  return value;
}

function deepMerge(base: Tree, override: Tree): Tree {
  for (const [key, value] of Object.entries(override)) {
    if (value === null) delete base[key];
    else base[key] = isTree(value) && isTree(base[key]) ? deepMerge(base[key], value) : value;
  }
  return base;
}

/** Applies one `a.b.c=value`; intermediate mappings are created, a scalar in the way is an error. */
export function applySet(config: Tree, assignment: string): Tree {
  const eq = assignment.indexOf('=');
  const keyPath = eq > 0 ? assignment.slice(0, eq).trim() : '';
  if (!keyPath || keyPath.split('.').some((part) => part === '')) {
    throw new ConfigError(`--set ${assignment}: expected key.path=value, e.g. --set classifier.epochs=2`);
  }
  const raw = assignment.slice(eq + 1);
  let value: unknown;
  try {
    value = raw.trim() === '' ? '' : parseYaml(raw);
  } catch {
    value = raw;
  }
  const parts = keyPath.split('.');
  let node = config;
  for (const [depth, part] of parts.slice(0, -1).entries()) {
    const next = node[part];
    if (next === undefined) node[part] = {};
    else if (!isTree(next)) {
      throw new ConfigError(
        `--set ${assignment}: ${parts.slice(0, depth + 1).join('.')} is a value, not a group of fields`,
      );
    }
    node = node[part] as Tree;
  }
  // `null` (or `~`) removes the field, e.g. to trade protocol.subsetSize for subsetFraction.
  if (value === null) delete node[parts.at(-1)!];
  else node[parts.at(-1)!] = value;
  return config;
}

/** Field paths whose values differ between two configurations, e.g. `gan.steps: 3000 -> 500`. */
export function configDifferences(before: unknown, after: unknown, prefix = ''): string[] {
  if (isTree(before) && isTree(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((key) => configDifferences(before[key], after[key], prefix ? `${prefix}.${key}` : key));
  }
  if (JSON.stringify(before) === JSON.stringify(after)) return [];
  const show = (v: unknown) => (v === undefined ? '(unset)' : JSON.stringify(v));
  return [`${prefix || '(root)'}: ${show(before)} -> ${show(after)}`];
}
