/**
 * Pictures: vega-lite specifications compiled and rendered to SVG by vega in
 * Node (no native dependency; BENCHMARKS.md). vega is an ES module with
 * top-level await, hence the dynamic imports.
 */
export async function renderSvg(spec: Record<string, unknown>): Promise<string> {
  const vl = await import('vega-lite');
  const vega = await import('vega');
  const compiled = vl.compile(spec as never).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}
