/**
 * No container engine runs where this project is developed, so the compose stack is checked by
 * reading it: its services, commands, environment and volumes must agree with the code (the
 * settings module, the worker entry points, the search attributes) and with .env.example.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { SEARCH_ATTRIBUTES } from '../../lib/search-attributes.js';
import {
  s3Settings,
  SETTINGS_VARIABLES,
  taskQueueSettings,
  TEMPORAL_CLIENT_VARIABLES,
  temporalSettings,
  workerSettings,
} from '../../lib/settings.js';

const root = path.resolve(import.meta.dirname, '..', '..');
const composeText = readFileSync(path.join(root, 'docker-compose.yml'), 'utf8');

interface Service {
  image?: string;
  build?: { context: string; target: string };
  command?: string[];
  entrypoint?: string[];
  user?: string;
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  profiles?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  deploy?: { resources: { reservations: { devices: Array<{ driver: string; capabilities: string[] }> } } };
}

/** .env.example as the variables compose would read from .env. */
const envExample = Object.fromEntries(
  readFileSync(path.join(root, '.env.example'), 'utf8')
    .split('\n')
    .filter((line) => /^[A-Z0-9_]+=/.test(line))
    .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
);

/** Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR:?error}; unset required ones throw. */
function interpolate(text: string, vars: Record<string, string>): string {
  return text.replace(/\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}/g, (_, name: string, op?: string, arg?: string) => {
    const value = vars[name];
    if (value !== undefined && value !== '') return value;
    if (op === '-') return arg ?? '';
    if (op === '?') throw new Error(`${name}: ${arg}`);
    return '';
  });
}

const stack = parse(interpolate(composeText, envExample), { merge: true }) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};
const services = stack.services;
const workers = ['orchestration-worker', 'cpu-worker', 'gpu-worker'];

test('the stack has Temporal, S3, the orchestration worker and CPU/GPU workers, GPU ones in the gpu profile', () => {
  for (const name of ['temporal', 's3', ...workers]) assert.ok(services[name], `service ${name}`);
  assert.deepEqual(services['gpu-worker']!.profiles, ['gpu']);
  const devices = services['gpu-worker']!.deploy!.resources.reservations.devices;
  assert.ok(
    devices.some((d) => d.driver === 'nvidia' && d.capabilities.includes('gpu')),
    'NVIDIA device reservation',
  );
  for (const name of ['temporal', 's3', 'orchestration-worker', 'cpu-worker'])
    assert.equal(services[name]!.profiles, undefined, `${name} starts by default`);
  assert.equal(services['gpu-worker']!.build!.target, 'gpu');
  assert.equal(services['cpu-worker']!.build!.target, 'cpu');
  const dockerfile = readFileSync(path.join(root, 'Dockerfile'), 'utf8');
  for (const target of ['cpu', 'gpu']) assert.match(dockerfile, new RegExp(`^FROM .* AS ${target}$`, 'm'));
});

test("worker commands run the project's worker entry points", () => {
  const entry = (name: string) => services[name]!.command!.at(-1)!;
  assert.equal(entry('orchestration-worker'), 'workers/orchestration.ts');
  assert.equal(entry('cpu-worker'), 'workers/gpu.ts');
  assert.equal(entry('gpu-worker'), 'workers/gpu.ts');
  for (const name of workers) {
    assert.ok(existsSync(path.join(root, entry(name))), `${entry(name)} exists`);
    assert.deepEqual(services[name]!.command!.slice(0, 3), ['node', '--import', 'tsx']);
  }
});

test("workers' environment holds only known settings and loads into valid settings that reach the stack's services", () => {
  const known = new Set<string>([...Object.keys(SETTINGS_VARIABLES), ...TEMPORAL_CLIENT_VARIABLES]);
  for (const name of workers) {
    const env = services[name]!.environment!;
    for (const key of Object.keys(env)) assert.ok(known.has(key), `${name}: ${key} is a setting of lib/settings.ts`);
    const temporal = temporalSettings({ ...env, TEMPORAL_CONFIG_FILE: path.join(root, 'package.json') });
    assert.equal(temporal.address, 'temporal:7233', `${name} reaches the temporal service`);
    const s3 = s3Settings(env);
    assert.equal(s3.endpoint, 'http://s3:8333', `${name} reaches the s3 service`);
    assert.equal(s3.accessKey, envExample.PNEUMOGAN_S3_ACCESS_KEY);
    assert.deepEqual(taskQueueSettings(env), {
      orchestration: envExample.PNEUMOGAN_TASK_QUEUE,
      gpu: envExample.PNEUMOGAN_GPU_TASK_QUEUE,
    });
    assert.equal(workerSettings(env).gpuConcurrency, Number(envExample.PNEUMOGAN_GPU_CONCURRENCY));
    for (const dependency of ['temporal', 's3'])
      assert.equal(
        services[name]!.depends_on?.[dependency]?.condition,
        'service_healthy',
        `${name} waits for ${dependency}`,
      );
  }
  assert.ok(
    services.s3!.ports!.some((p) => p.endsWith(':8333:8333')),
    'S3 listens where the workers look',
  );
  assert.ok(services.temporal!.ports!.some((p) => p.endsWith(':7233:7233')));
});

test('credentials come from the env file only, and compose refuses to start without them', () => {
  for (const key of ['PNEUMOGAN_S3_ACCESS_KEY', 'PNEUMOGAN_S3_SECRET_KEY']) {
    assert.ok(envExample[key], `.env.example sets ${key}`);
    const without = { ...envExample, [key]: '' };
    assert.throws(() => interpolate(composeText, without), new RegExp(`${key}: set ${key} in \\.env`));
  }
  assert.ok(!composeText.includes(envExample.PNEUMOGAN_S3_SECRET_KEY!), 'no secret is written in the compose file');
  const raw = parse(composeText, { merge: true }) as { services: Record<string, Service> };
  for (const [name, service] of Object.entries(raw.services)) {
    for (const [key, value] of Object.entries(service.environment ?? {})) {
      if (/SECRET|ACCESS_KEY/.test(key))
        assert.match(String(value), /^\$\{PNEUMOGAN_S3_/, `${name}: ${key} comes from .env`);
    }
  }
  assert.equal(services.s3!.environment!.AWS_ACCESS_KEY_ID, envExample.PNEUMOGAN_S3_ACCESS_KEY);
  assert.equal(services.s3!.environment!.AWS_SECRET_ACCESS_KEY, envExample.PNEUMOGAN_S3_SECRET_KEY);
  assert.match(readFileSync(path.join(root, '.gitignore'), 'utf8'), /^\.env$/m, '.env is never committed');
});

test('published ports listen on loopback unless BIND_ADDRESS says otherwise', () => {
  const ports = Object.values(services).flatMap((s) => s.ports ?? []);
  assert.ok(ports.length >= 3);
  for (const port of ports) assert.match(port, /^127\.0\.0\.1:\d+:\d+$/);
  const exposed = parse(interpolate(composeText, { ...envExample, BIND_ADDRESS: '0.0.0.0' }), { merge: true }) as {
    services: Record<string, Service>;
  };
  assert.ok(
    Object.values(exposed.services)
      .flatMap((s) => s.ports ?? [])
      .every((p) => p.startsWith('0.0.0.0:')),
  );
});

test('Temporal and S3 have healthchecks; volumes are named, declared and writable by the images users', () => {
  assert.deepEqual(services.temporal!.healthcheck!.test.slice(0, 5), [
    'CMD',
    'temporal',
    'operator',
    'cluster',
    'health',
  ]);
  assert.ok(services.s3!.healthcheck);
  for (const [name, service] of Object.entries(services)) {
    for (const volume of service.volumes ?? []) {
      const source = volume.split(':')[0]!;
      assert.ok(source in stack.volumes, `${name}: volume ${source} is declared`);
    }
  }
  // The temporal image runs as uid 1000: its data volume is handed over before the server starts.
  const init = services['temporal-data-permissions']!;
  assert.deepEqual(init.entrypoint, ['chown', '-R', '1000:1000', '/data']);
  assert.equal(init.user, '0:0');
  assert.deepEqual(init.volumes, ['temporal-data:/data']);
  assert.equal(
    services.temporal!.depends_on?.['temporal-data-permissions']?.condition,
    'service_completed_successfully',
  );
  assert.ok(services.temporal!.command!.includes('/data/temporal.sqlite'));
});

test('the Temporal service registers every search attribute the workflows upsert', () => {
  const command = services.temporal!.command!;
  for (const name of Object.values(SEARCH_ATTRIBUTES)) {
    const at = command.indexOf(`${name}=Keyword`);
    assert.ok(at > 0 && command[at - 1] === '--search-attribute', `${name} is registered`);
  }
});
