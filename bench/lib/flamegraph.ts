/**
 * A flame graph (SVG) from a V8 CPU profile (`node --cpu-prof` writes
 * `*.cpuprofile`). No dependency: the profile is already a call tree, so the
 * graph is that tree with each frame as wide as the time spent in it and its
 * callees, root at the bottom. Frames narrower than a minimum width are
 * merged into their parent's width (their time still counts there), which
 * keeps a 100,000-node profile down to a few hundred rectangles.
 *
 * Colours say where the time went: rebind's own code (src/), dependencies
 * (node_modules/), Node's internals (node:), V8's pseudo-frames
 * ((garbage collector), (program), (idle)).
 *
 * CLI: `npx tsx bench/lib/flamegraph.ts <in.cpuprofile> <out.svg> [title]`.
 */
import { readFileSync, writeFileSync } from 'node:fs';

/** The parts of a V8 `.cpuprofile` the renderer reads. */
export interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber?: number };
    children?: number[];
    hitCount?: number;
  }[];
  samples?: number[];
  timeDeltas?: number[];
  startTime: number;
  endTime: number;
}

/** One frame of the merged call tree: its label, own time and callees. */
export interface Frame {
  name: string;
  kind: 'rebind' | 'dependency' | 'node' | 'v8' | 'other';
  selfUs: number;
  totalUs: number;
  children: Frame[];
}

const WIDTH_PX = 1200;
const ROW_PX = 16;
const MIN_FRAME_PX = 0.5;
const CHAR_PX = 6.5;

function isCpuProfile(x: unknown): x is CpuProfile {
  if (typeof x !== 'object' || x === null) return false;
  const p = x as Partial<CpuProfile>;
  return Array.isArray(p.nodes) && typeof p.startTime === 'number' && typeof p.endTime === 'number';
}

function kindOf(url: string, name: string): Frame['kind'] {
  if (name.startsWith('(') && url === '') return 'v8';
  if (url.includes('/node_modules/')) return 'dependency';
  if (url.startsWith('node:')) return 'node';
  if (/\/(src|bench|dist\/src|dist\/bench)\//.test(url)) return 'rebind';
  return 'other';
}

function label(frame: CpuProfile['nodes'][number]['callFrame']): string {
  const name = frame.functionName || '(anonymous)';
  if (frame.url === '') return name;
  const file = frame.url.slice(frame.url.lastIndexOf('/') + 1) || frame.url;
  const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(frame.url)?.[1];
  return `${name} ${pkg ? `${pkg}:` : ''}${file}:${frame.lineNumber + 1}`;
}

/**
 * The profile's call tree with microseconds per frame. Sample times come
 * from `samples`/`timeDeltas` when present (exact), otherwise hit counts
 * spread evenly over the profile's duration. Children with the same label
 * are merged (V8 splits a frame by inlining decisions).
 */
export function callTree(profile: CpuProfile): Frame {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  if (profile.samples && profile.timeDeltas && profile.samples.length === profile.timeDeltas.length) {
    // timeDeltas[i] is the gap before sample i: the time belongs to the previous sample.
    for (let i = 1; i < profile.samples.length; i++) {
      const id = profile.samples[i - 1]!;
      selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, profile.timeDeltas[i]!));
    }
  } else {
    const hits = profile.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0);
    const perHit = hits > 0 ? (profile.endTime - profile.startTime) / hits : 0;
    for (const n of profile.nodes) selfUs.set(n.id, (n.hitCount ?? 0) * perHit);
  }
  const childIds = new Set(profile.nodes.flatMap((n) => n.children ?? []));
  const roots = profile.nodes.filter((n) => !childIds.has(n.id));
  const build = (id: number, depth: number): Frame => {
    const node = byId.get(id);
    if (!node) throw new Error(`cpuprofile: node ${id} is named as a child but not defined`);
    if (depth > 10_000) throw new Error('cpuprofile: call tree deeper than 10,000 frames');
    const children = mergeSame((node.children ?? []).map((c) => build(c, depth + 1)));
    const own = selfUs.get(id) ?? 0;
    return {
      name: label(node.callFrame),
      kind: kindOf(node.callFrame.url, node.callFrame.functionName),
      selfUs: own,
      totalUs: own + children.reduce((s, c) => s + c.totalUs, 0),
      children,
    };
  };
  const top = mergeSame(roots.map((r) => build(r.id, 0)));
  if (top.length === 1) return top[0]!;
  return { name: 'all', kind: 'other', selfUs: 0, totalUs: top.reduce((s, c) => s + c.totalUs, 0), children: top };
}

function mergeSame(frames: Frame[]): Frame[] {
  const byName = new Map<string, Frame>();
  for (const f of frames) {
    const seen = byName.get(f.name);
    if (!seen) {
      byName.set(f.name, f);
      continue;
    }
    seen.selfUs += f.selfUs;
    seen.totalUs += f.totalUs;
    seen.children = mergeSame([...seen.children, ...f.children]);
  }
  return [...byName.values()].sort((a, b) => b.totalUs - a.totalUs);
}

/** Frames with the most own time (the "bottom-up" view), for text reports. */
export function topSelf(root: Frame, n: number): { name: string; kind: Frame['kind']; selfUs: number; share: number }[] {
  const self = new Map<string, { kind: Frame['kind']; us: number }>();
  const walk = (f: Frame): void => {
    const s = self.get(f.name) ?? { kind: f.kind, us: 0 };
    s.us += f.selfUs;
    self.set(f.name, s);
    f.children.forEach(walk);
  };
  walk(root);
  const total = root.totalUs || 1;
  return [...self.entries()]
    .sort((a, b) => b[1].us - a[1].us)
    .slice(0, n)
    .map(([name, s]) => ({ name, kind: s.kind, selfUs: Math.round(s.us), share: s.us / total }));
}

const COLOURS: Record<Frame['kind'], [number, number]> = {
  rebind: [20, 35], // orange-red: ours
  dependency: [45, 55], // yellow: node_modules
  node: [190, 205], // blue: Node internals
  v8: [280, 290], // purple: GC, program, idle
  other: [0, 0],
};

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Stable pseudo-random hue within the kind's band, so a frame keeps its colour across graphs. */
function colour(f: Frame): string {
  let h = 0;
  for (let i = 0; i < f.name.length; i++) h = (h * 31 + f.name.charCodeAt(i)) >>> 0;
  const [lo, hi] = COLOURS[f.kind];
  const hue = lo + (h % (hi - lo + 1));
  const light = f.kind === 'other' ? 70 : 55 + (h % 15);
  return f.kind === 'other' ? `hsl(0,0%,${light}%)` : `hsl(${hue},75%,${light}%)`;
}

/**
 * Render a CPU profile (the parsed JSON of a `.cpuprofile`) as a
 * self-contained SVG flame graph; hovering a frame shows its total and own
 * time and share. Throws on something that is not a CPU profile.
 */
export function renderFlameGraph(cpuprofileJson: unknown, title: string): string {
  if (!isCpuProfile(cpuprofileJson)) throw new Error('not a V8 CPU profile (expected nodes, startTime, endTime)');
  const root = callTree(cpuprofileJson);
  const total = root.totalUs || 1;
  const scale = WIDTH_PX / total;
  const rects: string[] = [];
  let maxDepth = 0;
  const place = (f: Frame, x: number, depth: number): void => {
    const w = f.totalUs * scale;
    if (w < MIN_FRAME_PX) return;
    maxDepth = Math.max(maxDepth, depth);
    rects.push(
      `<g><title>${escapeXml(f.name)}: ${(f.totalUs / 1000).toFixed(1)} ms total (${((100 * f.totalUs) / total).toFixed(2)} %), ` +
        `${(f.selfUs / 1000).toFixed(1)} ms own</title>` +
        `<rect x="${x.toFixed(2)}" y="@${depth}" width="${w.toFixed(2)}" height="${ROW_PX - 1}" fill="${colour(f)}"/>` +
        (w > 3 * CHAR_PX
          ? `<text x="${(x + 3).toFixed(2)}" y="@${depth}t">${escapeXml(f.name.slice(0, Math.floor((w - 6) / CHAR_PX)))}</text>`
          : '') +
        `</g>`,
    );
    let cx = x;
    for (const c of f.children) {
      place(c, cx, depth + 1);
      cx += c.totalUs * scale;
    }
  };
  place(root, 0, 0);
  const top = 40;
  const height = top + (maxDepth + 1) * ROW_PX + 30;
  const yOf = (depth: number): number => top + (maxDepth - depth) * ROW_PX;
  const body = rects
    .join('\n')
    .replace(/y="@(\d+)t"/g, (_, d: string) => `y="${yOf(Number(d)) + ROW_PX - 4}"`)
    .replace(/y="@(\d+)"/g, (_, d: string) => `y="${yOf(Number(d))}"`);
  const durationMs = (cpuprofileJson.endTime - cpuprofileJson.startTime) / 1000;
  const legend = (['rebind', 'dependency', 'node', 'v8'] as const)
    .map((k, i) => `<rect x="${10 + i * 150}" y="${height - 20}" width="12" height="12" fill="hsl(${COLOURS[k][0]},75%,60%)"/>` +
      `<text x="${26 + i * 150}" y="${height - 10}">${{ rebind: 'rebind (src/)', dependency: 'node_modules', node: 'Node internals', v8: 'V8 (GC, program, idle)' }[k]}</text>`)
    .join('');
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH_PX}" height="${height}" font-family="monospace" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fdfdf6"/>`,
    `<text x="10" y="18" font-size="14">${escapeXml(title)}</text>`,
    `<text x="10" y="32">${durationMs.toFixed(0)} ms profiled; width = time in the frame and its callees; hover for figures</text>`,
    body,
    legend,
    `</svg>`,
  ].join('\n');
}

if (process.argv[1] && /flamegraph\.[jt]s$/.test(process.argv[1])) {
  const [input, output, title] = process.argv.slice(2);
  if (!input || !output) {
    process.stderr.write('usage: flamegraph <in.cpuprofile> <out.svg> [title]\n');
    process.exit(2);
  }
  const profile: unknown = JSON.parse(readFileSync(input, 'utf8'));
  writeFileSync(output, renderFlameGraph(profile, title ?? input));
  if (isCpuProfile(profile)) {
    for (const t of topSelf(callTree(profile), 15)) {
      process.stdout.write(`${(100 * t.share).toFixed(1).padStart(5)} %  ${t.kind.padEnd(10)} ${t.name}\n`);
    }
  }
}
