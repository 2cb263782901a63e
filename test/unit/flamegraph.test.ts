import { describe, expect, it } from 'vitest';
import { callTree, renderFlameGraph, topSelf, type CpuProfile } from '../../bench/lib/flamegraph';

/** root → main → {work → leaf, work (a second, inlined copy)}, root → (garbage collector). */
function profile(): CpuProfile {
  const frame = (functionName: string, url = '/app/src/balancer/x.ts') => ({ functionName, url, lineNumber: 9 });
  return {
    nodes: [
      { id: 1, callFrame: frame('(root)', ''), children: [2, 6] },
      { id: 2, callFrame: frame('main'), children: [3, 5] },
      { id: 3, callFrame: frame('work', '/app/node_modules/@grpc/grpc-js/build/src/server.js'), children: [4] },
      { id: 4, callFrame: frame('leaf', 'node:internal/streams/readable') },
      { id: 5, callFrame: frame('work', '/app/node_modules/@grpc/grpc-js/build/src/server.js') },
      { id: 6, callFrame: frame('(garbage collector)', '') },
    ],
    // Each sample's time is the next delta: leaf 3 ms, work(3) 1 ms, work(5) 2 ms, main 1 ms, GC 2 ms.
    samples: [4, 4, 4, 3, 5, 5, 2, 6, 6, 1],
    timeDeltas: [0, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000],
    startTime: 0,
    endTime: 10_000,
  };
}

describe('flame graph from a V8 CPU profile', () => {
  it('attributes each sample interval to the sampled frame and merges same-named siblings', () => {
    const root = callTree(profile());
    expect(root.name).toBe('(root)');
    expect(root.totalUs).toBe(9000);
    const [main, gc] = root.children;
    expect(main!.name).toMatch(/^main x\.ts:10$/);
    expect(main!.totalUs).toBe(7000);
    expect(main!.kind).toBe('rebind');
    expect(gc!.kind).toBe('v8');
    expect(gc!.totalUs).toBe(2000);
    // The two `work` nodes are one frame: 1 ms + 2 ms own, 3 ms in leaf.
    expect(main!.children).toHaveLength(1);
    const work = main!.children[0]!;
    expect(work.name).toBe('work @grpc/grpc-js:server.js:10');
    expect(work.kind).toBe('dependency');
    expect(work.selfUs).toBe(3000);
    expect(work.totalUs).toBe(6000);
    expect(work.children[0]!.kind).toBe('node');
  });

  it('lists the frames with the most own time', () => {
    const top = topSelf(callTree(profile()), 2);
    expect(top.map((t) => [t.name.split(' ')[0], t.selfUs])).toEqual([
      ['work', 3000],
      ['leaf', 3000],
    ]);
    expect(top[0]!.share).toBeCloseTo(3 / 9);
  });

  it('renders frames as wide as their time, root at the bottom', () => {
    const svg = renderFlameGraph(profile(), 'a <test>');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('a &lt;test&gt;');
    const rect = (name: string) => {
      const m = new RegExp(`<title>${name}[^<]*</title><rect x="([\\d.]+)" y="(\\d+)" width="([\\d.]+)"`).exec(svg);
      if (!m) throw new Error(`no frame ${name}`);
      return { x: Number(m[1]), y: Number(m[2]), w: Number(m[3]) };
    };
    const root = rect('\\(root\\)');
    const main = rect('main');
    const gc = rect('\\(garbage collector\\)');
    expect(root.w).toBe(1200);
    expect(main.w).toBeCloseTo((1200 * 7) / 9, 1);
    expect(gc.x).toBeCloseTo(main.w, 1);
    expect(main.y).toBeLessThan(root.y);
  });

  it('refuses something that is not a CPU profile', () => {
    expect(() => renderFlameGraph({ nodes: 'x' }, 't')).toThrow(/not a V8 CPU profile/);
    const broken = profile();
    broken.nodes[0]!.children = [2, 6, 99];
    expect(() => renderFlameGraph(broken, 't')).toThrow(/node 99/);
  });
});
