/**
 * Scenario files for the simulator (`npm run simulate -- --scenario-file
 * my.yaml`): the user's own replicas, clients and group settings. Validated
 * like the balancer configuration: every invalid field is reported with the
 * field's name and its accepted range, all at once. The group settings (and
 * each variant's and switch's) go through the balancer's own group
 * validation (parseGroupSettings in src/balancer/config.ts).
 */
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { builtinGroupDefaults, parseGroupSettings, type ConfigResult, type GroupConfig } from '../balancer/config';
import { BASE_SERVICE_RATE_PER_S } from './queue';
import type { SimClientSpec, SimReplicaSpec, SimScenario, SimSwitch } from './simulator';

/** Default simulated run, ms beyond 3 report intervals (the paper's test: converge in 3 intervals, then hold 60 s). */
export const DEFAULT_SIM_HOLD_MS = 60_000;
/** Default seed (as `--seed`). */
export const DEFAULT_SIM_SEED = 7;
/** Default ground-truth sampling period, ms. */
export const DEFAULT_SIM_SAMPLE_MS = 250;
/** Longest simulated run, ms (one day). */
export const MAX_SIM_DURATION_MS = 86_400_000;
/** Most replicas in a scenario (the default maxMembers of a group). */
export const MAX_SIM_REPLICAS = 1000;
/** Most clients in a scenario, counting `count`. */
export const MAX_SIM_CLIENTS = 10_000;
/** Most variants, switches, or rate/speed changes of one replica or client. */
export const MAX_SIM_LIST = 1000;
/** Most calls one variant may send (Σ highest rate × duration): ~3 µs of CPU each, so about 30 s. */
export const MAX_SIM_CALLS = 10_000_000;
/** Highest client rate, calls/s, and highest relative replica speed. */
export const MAX_SIM_RATE_PER_S = 100_000;
export const MAX_SIM_SPEED = 1000;

type GroupSettings = Omit<GroupConfig, 'name'>;

/** A validated scenario file, every default filled in. */
export interface ScenarioFile {
  name: string;
  description: string;
  durationMs: number;
  seed: number;
  sampleMs: number;
  initialBinding: 'round-robin' | 'balancer';
  /** Group settings shared by every variant (balancer defaults for what is not set). */
  group: GroupSettings;
  /** The runs to compare: group settings each (the file's `group` with the variant's overrides). */
  variants: { name: string; group: GroupSettings }[];
  replicas: ScenarioReplica[];
  clients: ScenarioClient[];
  switches: SimSwitch[];
}

export interface ScenarioReplica {
  name: string;
  attachMs: number;
  detachMs?: number;
  speed: number;
  speedChanges: { atMs: number; speed: number }[];
}

export interface ScenarioClient {
  /** How many identical clients this entry stands for. */
  count: number;
  rate: number;
  startMs: number;
  stopMs?: number;
  rateChanges: { atMs: number; rate: number }[];
  arrivals: 'periodic' | 'poisson';
  /** The clients understand weighted bindings (clientOptions() clients do): default true. */
  sets: boolean;
}

const TOP_KEYS = ['name', 'description', 'durationMs', 'seed', 'sampleMs', 'initialBinding', 'group', 'variants', 'replicas', 'clients', 'switches'];
const REPLICA_KEYS = ['name', 'speed', 'attachMs', 'detachMs', 'speedChanges'];
const CLIENT_KEYS = ['rate', 'count', 'startMs', 'stopMs', 'rateChanges', 'arrivals', 'sets'];
const SWITCH_KEYS = ['atMs', 'strategy', 'granularity'];
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const NAME_RULE = '1-64 letters, digits, . _ -, starting with a letter or digit';

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

interface Range {
  min: number;
  max: number;
  integer: boolean;
  unit: string;
  minExclusive?: boolean;
  /** Says where max comes from, e.g. "durationMs". */
  maxNote?: string;
}

/** Checks a number against its range; the message has the balancer config's shape. */
function num(value: unknown, where: string, range: Range, errors: string[]): number | undefined {
  const low = typeof value === 'number' && (range.minExclusive ? value <= range.min : value < range.min);
  if (typeof value !== 'number' || !Number.isFinite(value) || low || value > range.max || (range.integer && !Number.isInteger(value))) {
    const kind = range.integer ? 'an integer' : 'a number';
    const unit = [range.unit, range.maxNote].filter(Boolean).join(', ');
    errors.push(`${where} is ${JSON.stringify(value)}; it must be ${kind} ${range.minExclusive ? '>' : '>='} ${range.min} and <= ${range.max}${unit ? ` (${unit})` : ''}`);
    return undefined;
  }
  return value;
}

function unknownKeys(raw: Record<string, unknown>, accepted: readonly string[], where: string, what: string, errors: string[]): void {
  for (const key of Object.keys(raw)) {
    if (!accepted.includes(key)) errors.push(`${where ? `${where}.` : ''}${key} is not ${what} (accepted: ${accepted.join(', ')})`);
  }
}

function list(value: unknown, where: string, max: number, errors: string[]): unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    errors.push(`${where} must be a list`);
    return [];
  }
  if (value.length > max) {
    errors.push(`${where} has ${value.length} entries; at most ${max} are accepted`);
    return [];
  }
  return value;
}

/** A list of `{ atMs, <key> }` changes, atMs strictly ascending within [0, durationMs]. */
function changes<K extends 'rate' | 'speed'>(value: unknown, where: string, key: K, range: Range, durationMs: number, errors: string[]): ({ atMs: number } & Record<K, number>)[] {
  const out: ({ atMs: number } & Record<K, number>)[] = [];
  let last = -1;
  list(value, where, MAX_SIM_LIST, errors).forEach((c, i) => {
    const at = `${where}[${i}]`;
    if (!isObject(c)) return void errors.push(`${at} must be an object { atMs, ${key} }`);
    unknownKeys(c, ['atMs', key], at, `a ${key} change field`, errors);
    const atMs = num(c['atMs'], `${at}.atMs`, { min: 0, max: durationMs, integer: true, unit: 'ms', maxNote: 'durationMs' }, errors);
    const v = num(c[key], `${at}.${key}`, range, errors);
    if (atMs !== undefined && atMs <= last) errors.push(`${at}.atMs is ${atMs}; changes must be in strictly ascending atMs (the one before is at ${last})`);
    if (atMs !== undefined) last = atMs;
    if (atMs !== undefined && v !== undefined) out.push({ atMs, [key]: v } as { atMs: number } & Record<K, number>);
  });
  return out;
}

/** The variant key of group settings with no variants listed, e.g. "on_demand_minimum_dispersion". */
export function variantKey(group: Pick<GroupSettings, 'granularity' | 'strategy'>): string {
  return `${group.granularity.replace('-', '_')}_${group.strategy.name}`;
}

/**
 * Validates a scenario (already parsed from YAML/JSON). `defaultName` names
 * it when the file does not (the file's base name).
 */
export function parseScenarioFile(raw: unknown, defaultName = 'scenario'): ConfigResult<ScenarioFile> {
  const errors: string[] = [];
  if (!isObject(raw)) return { ok: false, errors: ['a scenario must be an object (YAML mapping or JSON object)'] };
  unknownKeys(raw, TOP_KEYS, '', 'a scenario setting', errors);

  let name = defaultName;
  if (raw['name'] !== undefined) {
    if (typeof raw['name'] === 'string' && NAME.test(raw['name'])) name = raw['name'];
    else errors.push(`name is ${JSON.stringify(raw['name'])}; it must be ${NAME_RULE}`);
  }
  let description = '';
  if (raw['description'] !== undefined) {
    if (typeof raw['description'] === 'string' && raw['description'].length <= 1000) description = raw['description'];
    else errors.push(`description must be a string of at most 1000 characters`);
  }

  let group = builtinGroupDefaults();
  if (raw['group'] !== undefined) {
    if (isObject(raw['group'])) group = parseGroupSettings(raw['group'], group, 'group', errors, false);
    else errors.push('group must be an object of group settings (as in the balancer configuration, without name)');
  }

  // An invalid durationMs checks the rest against the default (one error, not a cascade).
  const defaultDurationMs = 3 * group.reportIntervalMs + DEFAULT_SIM_HOLD_MS;
  const durationMs =
    raw['durationMs'] === undefined
      ? defaultDurationMs
      : (num(raw['durationMs'], 'durationMs', { min: 1, max: MAX_SIM_DURATION_MS, integer: true, unit: 'ms' }, errors) ?? defaultDurationMs);
  const seed = raw['seed'] === undefined ? DEFAULT_SIM_SEED : (num(raw['seed'], 'seed', { min: 1, max: 2 ** 32 - 1, integer: true, unit: '' }, errors) ?? DEFAULT_SIM_SEED);
  const sampleMs = raw['sampleMs'] === undefined ? DEFAULT_SIM_SAMPLE_MS : (num(raw['sampleMs'], 'sampleMs', { min: 10, max: 60_000, integer: true, unit: 'ms' }, errors) ?? DEFAULT_SIM_SAMPLE_MS);
  let initialBinding: ScenarioFile['initialBinding'] = 'balancer';
  if (raw['initialBinding'] !== undefined) {
    if (raw['initialBinding'] === 'balancer' || raw['initialBinding'] === 'round-robin') initialBinding = raw['initialBinding'];
    else errors.push(`initialBinding is ${JSON.stringify(raw['initialBinding'])}; it must be one of balancer, round-robin`);
  }
  const atRange: Range = { min: 0, max: durationMs, integer: true, unit: 'ms', maxNote: 'durationMs' };

  const variants: ScenarioFile['variants'] = [];
  if (raw['variants'] === undefined) {
    variants.push({ name: variantKey(group), group });
  } else {
    const rawVariants = list(raw['variants'], 'variants', 50, errors);
    if (Array.isArray(raw['variants']) && raw['variants'].length === 0) errors.push('variants is empty; list at least one, or leave it out to run the group settings alone');
    const seen = new Set<string>();
    rawVariants.forEach((v, i) => {
      const where = `variants[${i}]`;
      if (!isObject(v)) return void errors.push(`${where} must be an object: { name, <group settings> }`);
      const vname = v['name'];
      if (typeof vname !== 'string' || !NAME.test(vname)) return void errors.push(`${where}.name is ${JSON.stringify(vname)}; it must be ${NAME_RULE}`);
      if (seen.has(vname)) errors.push(`${where}.name "${vname}" is listed twice`);
      seen.add(vname);
      variants.push({ name: vname, group: parseGroupSettings(v, group, where, errors, true) });
    });
  }

  const replicas: ScenarioReplica[] = [];
  const rawReplicas = raw['replicas'];
  if (typeof rawReplicas === 'number') {
    const n = num(rawReplicas, 'replicas', { min: 1, max: MAX_SIM_REPLICAS, integer: true, unit: 'replicas' }, errors);
    for (let i = 1; i <= (n ?? 0); i++) replicas.push({ name: `r${i}`, attachMs: 0, speed: 1, speedChanges: [] });
  } else if (rawReplicas === undefined || (Array.isArray(rawReplicas) && rawReplicas.length === 0)) {
    errors.push(`replicas is missing; give a number (1-${MAX_SIM_REPLICAS}) or a list of { name, speed, attachMs, detachMs, speedChanges }`);
  } else {
    const seen = new Set<string>();
    list(rawReplicas, 'replicas', MAX_SIM_REPLICAS, errors).forEach((r, i) => {
      const where = `replicas[${i}]`;
      if (!isObject(r)) return void errors.push(`${where} must be an object { name, speed, attachMs, detachMs, speedChanges }`);
      unknownKeys(r, REPLICA_KEYS, where, 'a replica setting', errors);
      const rname = r['name'];
      if (typeof rname !== 'string' || !NAME.test(rname)) return void errors.push(`${where}.name is ${JSON.stringify(rname)}; it must be ${NAME_RULE}`);
      if (seen.has(rname)) errors.push(`${where}.name "${rname}" is listed twice`);
      seen.add(rname);
      const speedRange: Range = { min: 0, minExclusive: true, max: MAX_SIM_SPEED, integer: false, unit: `relative speed; 1 serves ${BASE_SERVICE_RATE_PER_S} calls/s` };
      const speed = r['speed'] === undefined ? 1 : (num(r['speed'], `${where}.speed`, speedRange, errors) ?? 1);
      const attachMs = r['attachMs'] === undefined ? 0 : (num(r['attachMs'], `${where}.attachMs`, atRange, errors) ?? 0);
      let detachMs: number | undefined;
      if (r['detachMs'] !== undefined) {
        detachMs = num(r['detachMs'], `${where}.detachMs`, { ...atRange, min: attachMs, minExclusive: true, maxNote: 'after attachMs, up to durationMs' }, errors);
      }
      const speedChanges = changes(r['speedChanges'], `${where}.speedChanges`, 'speed', speedRange, durationMs, errors);
      replicas.push({ name: rname, attachMs, ...(detachMs !== undefined ? { detachMs } : {}), speed, speedChanges });
    });
  }

  const clients: ScenarioClient[] = [];
  let totalClients = 0;
  let calls = 0;
  const rateRange: Range = { min: 0, max: MAX_SIM_RATE_PER_S, integer: false, unit: 'calls/s' };
  if (raw['clients'] === undefined || (Array.isArray(raw['clients']) && raw['clients'].length === 0)) {
    errors.push('clients is missing; give a list of { rate, count, startMs, stopMs, rateChanges, arrivals, sets }');
  }
  list(raw['clients'], 'clients', MAX_SIM_CLIENTS, errors).forEach((c, i) => {
    const where = `clients[${i}]`;
    if (!isObject(c)) return void errors.push(`${where} must be an object { rate, count, startMs, stopMs, rateChanges, arrivals, sets }`);
    unknownKeys(c, CLIENT_KEYS, where, 'a client setting', errors);
    const count = c['count'] === undefined ? 1 : (num(c['count'], `${where}.count`, { min: 1, max: MAX_SIM_CLIENTS, integer: true, unit: 'clients' }, errors) ?? 1);
    totalClients += count;
    const rate = c['rate'] === undefined ? (errors.push(`${where}.rate is missing; it must be a number >= 0 and <= ${MAX_SIM_RATE_PER_S} (calls/s)`), 0) : (num(c['rate'], `${where}.rate`, rateRange, errors) ?? 0);
    const startMs = c['startMs'] === undefined ? 0 : (num(c['startMs'], `${where}.startMs`, atRange, errors) ?? 0);
    let stopMs: number | undefined;
    if (c['stopMs'] !== undefined) stopMs = num(c['stopMs'], `${where}.stopMs`, { ...atRange, min: startMs, minExclusive: true, maxNote: 'after startMs, up to durationMs' }, errors);
    const rateChanges = changes(c['rateChanges'], `${where}.rateChanges`, 'rate', rateRange, durationMs, errors);
    let arrivals: ScenarioClient['arrivals'] = 'periodic';
    if (c['arrivals'] !== undefined) {
      if (c['arrivals'] === 'periodic' || c['arrivals'] === 'poisson') arrivals = c['arrivals'];
      else errors.push(`${where}.arrivals is ${JSON.stringify(c['arrivals'])}; it must be one of periodic, poisson`);
    }
    let sets = true;
    if (c['sets'] !== undefined) {
      if (typeof c['sets'] === 'boolean') sets = c['sets'];
      else errors.push(`${where}.sets is ${JSON.stringify(c['sets'])}; it must be true or false (whether the clients understand weighted bindings)`);
    }
    calls += (count * Math.max(rate, ...rateChanges.map((x) => x.rate)) * durationMs) / 1000;
    clients.push({ count, rate, startMs, ...(stopMs !== undefined ? { stopMs } : {}), rateChanges, arrivals, sets });
  });
  if (totalClients > MAX_SIM_CLIENTS) errors.push(`clients add up to ${totalClients} clients (with count); at most ${MAX_SIM_CLIENTS} are accepted`);
  if (calls > MAX_SIM_CALLS) {
    errors.push(`clients send up to ${Math.round(calls)} calls in durationMs ${durationMs} (Σ count × highest rate × duration); at most ${MAX_SIM_CALLS} per variant are accepted: shorten durationMs or lower the rates`);
  }

  const switches: SimSwitch[] = [];
  list(raw['switches'], 'switches', MAX_SIM_LIST, errors).forEach((s, i) => {
    const where = `switches[${i}]`;
    if (!isObject(s)) return void errors.push(`${where} must be an object { atMs, strategy, granularity }`);
    unknownKeys(s, SWITCH_KEYS, where, 'a switch setting', errors);
    const atMs = num(s['atMs'], `${where}.atMs`, atRange, errors);
    if (s['strategy'] === undefined && s['granularity'] === undefined) errors.push(`${where} changes nothing; give strategy (a name or { name, params }) and/or granularity`);
    const changed: Record<string, unknown> = {};
    if (s['strategy'] !== undefined) changed['strategy'] = s['strategy'];
    if (s['granularity'] !== undefined) changed['granularity'] = s['granularity'];
    const settings = parseGroupSettings(changed, group, where, errors, false);
    if (atMs === undefined) return;
    switches.push({
      atMs,
      ...(s['strategy'] !== undefined ? { strategy: settings.strategy.name, params: settings.strategy.params } : {}),
      ...(s['granularity'] !== undefined ? { granularity: settings.granularity } : {}),
    });
  });

  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, value: { name, description, durationMs, seed, sampleMs, initialBinding, group, variants, replicas, clients, switches } };
}

/** Reads a scenario file (.json as JSON, anything else as YAML) without validating it; the name defaults to the file's base name. */
export function readScenarioRaw(file: string): ConfigResult<{ raw: unknown; defaultName: string }> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { ok: false, errors: [`cannot read ${file}: ${(err as Error).message}`] };
  }
  const json = file.endsWith('.json');
  try {
    return { ok: true, value: { raw: json ? JSON.parse(text) : parseYaml(text), defaultName: path.basename(file).replace(/\.(ya?ml|json)$/, '') } };
  } catch (err) {
    return { ok: false, errors: [`${file} is not valid ${json ? 'JSON' : 'YAML'}: ${(err as Error).message}`] };
  }
}

/** Reads and validates a scenario file (.yaml, .yml or .json). */
export function loadScenarioFile(file: string): ConfigResult<ScenarioFile> {
  const read = readScenarioRaw(file);
  return read.ok ? parseScenarioFile(read.value.raw, read.value.defaultName) : read;
}

/** Back to a plain object that parses to the same scenario (every default written out). */
export function serializeScenarioFile(s: ScenarioFile): Record<string, unknown> {
  return {
    name: s.name,
    description: s.description,
    durationMs: s.durationMs,
    seed: s.seed,
    sampleMs: s.sampleMs,
    initialBinding: s.initialBinding,
    group: structuredClone(s.group),
    variants: s.variants.map((v) => ({ name: v.name, ...structuredClone(v.group) })),
    replicas: structuredClone(s.replicas),
    clients: structuredClone(s.clients),
    switches: s.switches.map((w) => ({
      atMs: w.atMs,
      ...(w.strategy !== undefined ? { strategy: { name: w.strategy, params: { ...w.params } } } : {}),
      ...(w.granularity !== undefined ? { granularity: w.granularity } : {}),
    })),
  };
}

/** One simulator run per variant, keyed by variant name. */
export function scenarioRuns(s: ScenarioFile): { key: string; scenario: SimScenario }[] {
  const clients: SimClientSpec[] = s.clients.flatMap((c) =>
    Array.from({ length: c.count }, () => ({
      rate: c.rate,
      startMs: c.startMs,
      ...(c.stopMs !== undefined ? { stopMs: c.stopMs } : {}),
      rateChanges: c.rateChanges,
      arrivals: c.arrivals,
      sets: c.sets,
    })),
  );
  const replicas: SimReplicaSpec[] = s.replicas.map((r) => ({ ...r }));
  return s.variants.map((v) => ({
    key: v.name,
    scenario: {
      name: `${s.name}/${v.name}`,
      description: s.description,
      group: { ...v.group } as Record<string, unknown>,
      replicas,
      clients,
      initialBinding: s.initialBinding,
      durationMs: s.durationMs,
      sampleMs: s.sampleMs,
      switches: s.switches,
      seed: s.seed,
    },
  }));
}
