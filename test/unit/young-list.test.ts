import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { youngList } from '../../src/h2/frames';

const probe = path.join(__dirname, '../support/young-list-probe.ts');

describe('youngList (src/h2 lists born young)', () => {
  it('makes a new, empty, growable array each time', () => {
    const a = youngList<string>();
    const b = youngList<string>();
    expect(a).not.toBe(b);
    a.push('x', 'y');
    expect(a).toEqual(['x', 'y']);
    expect(b).toEqual([]);
    expect(youngList()).toEqual([]);
  });

  it('is never pretenured, where an array literal whose arrays outlive scavenges is', async () => {
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['--import', 'tsx', '--allow-natives-syntax', '--max-semi-space-size=1', probe], { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
      ),
    );
    const r = JSON.parse(out) as { literalOld: number; youngListOld: number };
    // The control: V8 pretenured the literal's site, so its new arrays are born old
    // (what happened to the transport's header and output lists with 1,000 replicas attached).
    expect(r.literalOld).toBeGreaterThan(50);
    expect(r.youngListOld).toBe(0);
  }, 90_000);
});
