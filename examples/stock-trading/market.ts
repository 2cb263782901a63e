/**
 * A toy market: every replica quotes the same price for a symbol at the same
 * moment (a deterministic walk on the symbol and the current second), so
 * quotes agree whichever replica serves them.
 */
export const SYMBOLS = ['ACME', 'GLOBEX', 'INITECH', 'UMBRELLA', 'WAYNE', 'STARK'] as const;

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** Price of `symbol` at `atMs`, in dollars, with cents. */
export function price(symbol: string, atMs: number): number {
  const base = 50 + (hash(symbol) % 200);
  const second = Math.floor(atMs / 1000);
  const wave = Math.sin(second / 30 + (hash(symbol) % 7)) * 0.08 + Math.sin(second / 7) * 0.02;
  return Math.round(base * (1 + wave) * 100) / 100;
}

export function isSymbol(symbol: string): boolean {
  return (SYMBOLS as readonly string[]).includes(symbol);
}
