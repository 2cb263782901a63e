/// <reference lib="dom" />
/**
 * The dashboard in a real browser: Debian's Chromium (installed by
 * test/support/install-chromium.sh when missing) driven by playwright-core,
 * during a running scenario — three replicas, uneven open-loop clients. The
 * chart must show every replica and keep updating; switching the strategy
 * from the page must change the balancer. A screenshot is saved in
 * test-output/dashboard.png. A balancer that does not allow changes shows
 * its refusal on the page.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Balancer } from '../../src/index';
import { clientOptions } from '../../src/index';
import { echoClient, startBalancer, startReplica, stopReplica, type TestReplica } from '../support/cluster';
import { openLoop, type LoadClient } from '../support/load';

const root = path.join(__dirname, '../..');
const output = path.join(root, 'test-output');
/** Chromium's flags on this kind of machine: no sandbox as root, no background network calls (the network is closed). */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

function chromiumPath(): string {
  const wanted = process.env['REBIND_CHROMIUM'];
  if (wanted !== undefined && wanted !== '') return wanted;
  for (const candidate of ['/usr/bin/chromium', '/usr/bin/chromium-browser']) if (existsSync(candidate)) return candidate;
  // A fresh machine: install it, as CI does.
  execFileSync('bash', [path.join(root, 'test/support/install-chromium.sh')], { stdio: 'inherit', timeout: 600_000 });
  if (existsSync('/usr/bin/chromium')) return '/usr/bin/chromium';
  throw new Error('Chromium is not installed and test/support/install-chromium.sh could not install it');
}

let browser: Browser;
let page: Page;
let balancer: Balancer;
const replicas: TestReplica[] = [];
const loads: LoadClient[] = [];

beforeAll(async () => {
  const executablePath = chromiumPath();
  // No token: the operator opts in to changes from the page, as the admin port is on loopback.
  balancer = await startBalancer([{ name: 'echo', granularity: 'on-demand', strategy: 'minimum_dispersion', reportIntervalMs: 250 }], {
    dashboardPushIntervalMs: 250,
    security: { adminUnauthenticatedChanges: true },
  });
  for (const name of ['A', 'B', 'C']) replicas.push(await startReplica(balancer, name));
  // Uneven clients: 60, 30, 60, 30 calls/s.
  for (const rate of [60, 30, 60, 30]) loads.push(openLoop(echoClient(balancer.address, clientOptions()), rate));
  browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, headless: true });
  page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
}, 660_000);

afterAll(async () => {
  await browser?.close();
  for (const l of loads) {
    await l.stop();
    l.stub.close();
  }
  for (const r of replicas) await stopReplica(r);
  await balancer?.stop();
});

describe('dashboard in Chromium', () => {
  it('charts every replica live, switches the strategy from the page, and is saved as a screenshot', async () => {
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    page.on('console', (msg) => msg.type() === 'error' && errors.push(msg.text()));
    await page.goto(`http://${balancer.adminAddress}/`);

    const group = balancer.registry.groups.get('echo')!;
    const memberIds = [...group.members.values()].map((m) => m.id).sort();
    expect(memberIds).toHaveLength(3);
    const chart = page.locator('.group[data-group="echo"] .chart');
    // Every replica is a series of the chart, and in its legend with its address.
    await page.waitForFunction(
      (ids) => (document.querySelector('.group[data-group="echo"] .chart') as HTMLElement | null)?.dataset['series']?.split(',').sort().join() === ids.join(),
      memberIds,
      { timeout: 15_000 },
    );
    const legend = await chart.locator('.u-legend .u-series .u-label').allTextContents();
    for (const m of group.members.values()) expect(legend).toContain(`${m.id} ${m.address}`);
    // The chart keeps updating (pushed by the balancer, not polled).
    const points = async () => Number(await chart.getAttribute('data-points'));
    const before = await points();
    await page.waitForFunction((n) => Number((document.querySelector('.group[data-group="echo"] .chart') as HTMLElement).dataset['points']) >= n + 4, before, { timeout: 15_000 });
    expect(await page.locator('#live').getAttribute('data-state')).toBe('live');
    // The member table lists them, with loads.
    await expect.poll(async () => (await page.locator('.group[data-group="echo"] table.members tbody tr').allTextContents()).length, { timeout: 10_000 }).toBe(3);
    // The ledger: every client's binding (members with shares), and the planner's last decision with its gain.
    const bindingRows = page.locator('.group[data-group="echo"] table.bindings tbody tr');
    await expect.poll(async () => (await bindingRows.evaluateAll((rows) => rows.map((r) => r.getAttribute('data-client')))).sort(), { timeout: 10_000 }).toEqual(
      [...group.ledger.entries()].map(([id]) => id).sort(),
    );
    expect(await bindingRows.count()).toBe(4);
    for (const text of await bindingRows.allTextContents()) expect(text).toMatch(/^\S+(127\.0\.0\.1:\d+=\d+)+(bind|plan|avoid)\d+ (s|min) ago$/);
    // Whether the planner has moved anyone yet depends on where the first binds landed: the panel shows what the group has.
    const plan = page.locator('.group[data-group="echo"] .plan');
    const serverMoves = () => (group.lastPlan === null ? '' : String(group.lastPlan.moves.length));
    await expect.poll(async () => (await plan.getAttribute('data-moves')) === serverMoves(), { timeout: 10_000 }).toBe(true);
    // (Read in one go: a push may update the panel between two reads.)
    const shownPlan = await plan.evaluate((node) => ({ moves: (node as HTMLElement).dataset['moves'], text: node.textContent }));
    if (shownPlan.moves === '') expect(shownPlan.text).toBe('no plan yet');
    else {
      expect(shownPlan.text).toMatch(/^last plan \d+ s ago: \d+ moves?, expected gain \S+ \(dispersion \S+ → \S+ \(-?\d+ %\), calls_per_s²\)$/);
      expect(await page.locator('.group[data-group="echo"] table.plan-moves tbody tr').count()).toBeGreaterThanOrEqual(1);
    }

    // Switch the strategy from the page.
    expect(group.strategyName).toBe('minimum_dispersion');
    await page.selectOption('.group[data-group="echo"] select[name=strategy]', 'p2c');
    await page.fill('.group[data-group="echo"] input[name=params]', '');
    await page.click('.group[data-group="echo"] .strategy-form button');
    await page.waitForFunction(() => document.querySelector('.group[data-group="echo"] .result')?.textContent === 'strategy is now p2c', undefined, { timeout: 10_000 });
    expect(group.strategyName).toBe('p2c');
    // The change comes back through the event stream: the feed and the summary show it.
    await page.waitForFunction(() => [...document.querySelectorAll('#feed li[data-kind="strategy"] .text')].some((n) => n.textContent?.includes('-> p2c')), undefined, { timeout: 10_000 });
    await page.waitForFunction(() => (document.querySelector('.group[data-group="echo"]') as HTMLElement).dataset['strategy'] === 'p2c', undefined, { timeout: 10_000 });

    // Let a few more points in, then keep the picture.
    await page.waitForTimeout(1500);
    mkdirSync(output, { recursive: true });
    await page.screenshot({ path: path.join(output, 'dashboard.png'), fullPage: true });
    expect(errors).toEqual([]);
    for (const l of loads) expect(l.failed, l.errors.join('\n')).toBe(0);
  }, 120_000);

  it('shows why a change was refused when the balancer allows none', async () => {
    const closed = await startBalancer([{ name: 'echo', strategy: 'minimum_dispersion' }], { dashboardPushIntervalMs: 250 });
    const other = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    try {
      await other.goto(`http://${closed.adminAddress}/`);
      await other.waitForSelector('#changes-off:not([hidden])', { timeout: 10_000 });
      await other.waitForSelector('.group[data-group="echo"] .strategy-form button', { timeout: 10_000 });
      await other.selectOption('.group[data-group="echo"] select[name=strategy]', 'p2c');
      await other.click('.group[data-group="echo"] .strategy-form button');
      const result = other.locator('.group[data-group="echo"] .result');
      await expect.poll(() => result.textContent(), { timeout: 10_000 }).toContain('refused (HTTP 403)');
      expect(await result.textContent()).toContain('security.adminToken');
      expect(await result.getAttribute('role')).toBe('alert');
      expect(await result.getAttribute('data-ok')).toBe('false');
      expect(closed.registry.groups.get('echo')!.strategyName).toBe('minimum_dispersion');
    } finally {
      await other.close();
      await closed.stop();
    }
  }, 60_000);
});
