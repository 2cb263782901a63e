/**
 * `rebind status`: groups, members, raw and dampened loads, clients by
 * binding size and the planner's last decision from the admin API; with
 * --bindings, each group's most recent bindings.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { DEFAULT_BINDINGS_SHOWN, MAX_BINDINGS_SHOWN } from '../balancer/admin';
import { DEFAULT_CONTROL_LISTEN } from '../balancer/config';
import type { GroupStatus__Output } from '../generated/rebind/v1/GroupStatus';
import type { HaStatus__Output } from '../generated/rebind/v1/HaStatus';
import type { ListGroupsResponse__Output } from '../generated/rebind/v1/ListGroupsResponse';
import { adminCall, adminClient, formatGroup } from './admin-client';
import { addControlAuthOptions, controlCredentials, controlToken, hostPort, positiveInteger, type ControlAuthOptions } from './options';

/** A time span for people: seconds up to two minutes, then minutes, then hours. */
function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

/** A dispersion (the group metric squared): whole numbers from 100 up, three significant digits below. */
function quantity(n: number): string {
  return Math.abs(n) >= 100 || n === 0 ? n.toFixed(0) : String(Number(n.toPrecision(3)));
}

/**
 * The ledger lines of a group: clients by binding size, the last plan (age,
 * moves, dispersion before -> after and the share removed), and the listed
 * bindings, most recent first (`client  address=permille,...  via  age`;
 * a member that left is shown by its id).
 */
export function formatLedger(group: GroupStatus__Output, nowMs: number): string[] {
  const sizes = group.bindingSizes.flatMap((n, size) => (size > 0 && n > 0 ? [`${size} member${size === 1 ? '' : 's'}: ${n}`] : []));
  const lines = [`  bindings ${group.bindingCount}${sizes.length > 0 ? ` (${sizes.join(', ')})` : ''}`];
  const plan = group.lastPlan;
  if (plan === null) lines.push('  last plan: none');
  else {
    const { dispersionBefore: before, dispersionAfter: after } = plan;
    const change = before > 0 ? ` (${Math.round((100 * (after - before)) / before)} %)` : '';
    lines.push(`  last plan ${ago(nowMs - plan.atUnixMs)}: ${plan.moveCount} move${plan.moveCount === 1 ? '' : 's'}, dispersion ${quantity(before)} -> ${quantity(after)}${change}`);
  }
  if (group.bindings.length > 0) {
    lines.push(`  most recent bindings (${group.bindings.length} of ${group.bindingCount}):`);
    const rows = group.bindings.map((b) => ({ b, members: b.members.map((m) => `${m.address || m.memberId}=${m.permille}`).join(',') }));
    const idWidth = Math.max(...rows.map((r) => r.b.clientId.length));
    const membersWidth = Math.max(...rows.map((r) => r.members.length));
    for (const { b, members } of rows) lines.push(`    ${b.clientId.padEnd(idWidth)}  ${members.padEnd(membersWidth)}  ${b.via.padEnd(5)}  ${ago(nowMs - b.sinceUnixMs)}`);
  }
  return lines;
}

/**
 * The HA lines (several balancers on etcd): etcd health as the answering
 * balancer sees it, the balancers registered and the leader of each group.
 */
export function formatHa(ha: HaStatus__Output, nowMs: number): string[] {
  const etcd = ha.etcdUp ? 'etcd up' : `etcd UNREACHABLE since ${ago(nowMs - ha.etcdDownSinceUnixMs)}: not planning`;
  const lines = [`ha: balancer ${ha.balancerId}, ${etcd}, ${ha.balancers.length} balancer${ha.balancers.length === 1 ? '' : 's'}`];
  for (const b of ha.balancers) lines.push(`  balancer ${b.id}${b.id === ha.balancerId ? ' (this one)' : ''}  data ${b.address}  control ${b.controlAddress}${b.adminAddress ? `  admin ${b.adminAddress}` : ''}  started ${ago(nowMs - b.startedAtUnixMs)}`);
  for (const l of ha.leaders) lines.push(`  leader of ${l.group}: ${l.balancerId || 'none'}${l.leading ? ' (this one)' : ''}`);
  return lines;
}

/** `--bindings [n]`: a count 0..MAX_BINDINGS_SHOWN. */
function bindingsCount(value: string): number {
  const n = value === '0' ? 0 : positiveInteger(value);
  if (n > MAX_BINDINGS_SHOWN) throw new InvalidArgumentError(`expected at most ${MAX_BINDINGS_SHOWN}, got "${value}"`);
  return n;
}

export function registerStatusCommand(program: Command): void {
  addControlAuthOptions(program
    .command('status')
    .description('Show groups, members, their raw and dampened loads, clients by binding size and the last plan (--watch for a live table).')
    .option('-b, --balancer <host:port>', "balancer's control address", hostPort, DEFAULT_CONTROL_LISTEN)
    .option('-g, --group <name>', 'only this group', '')
    .option('--bindings [n]', `also list each group's n most recent bindings (default ${DEFAULT_BINDINGS_SHOWN}, at most ${MAX_BINDINGS_SHOWN})`, bindingsCount)
    .option('-w, --watch', 'refresh until Ctrl-C')
    .option('-i, --interval <ms>', 'refresh period with --watch', positiveInteger, 1000)
    .option('--json', 'print the admin API answer as JSON'))
    .action(async (opts: { balancer: string; group: string; bindings?: number | true; watch?: boolean; interval: number; json?: boolean } & ControlAuthOptions) => {
      const client = adminClient(opts.balancer, controlCredentials(opts));
      const token = controlToken(opts);
      const bindings = opts.bindings === true ? DEFAULT_BINDINGS_SHOWN : (opts.bindings ?? 0);
      const show = async () => {
        const reply = await adminCall<ListGroupsResponse__Output>(client, opts.balancer, 'ListGroups', { group: opts.group, bindings }, token);
        if (opts.json) return JSON.stringify(reply);
        const now = Date.now();
        const stamp = new Date(now).toISOString().slice(11, 19);
        return [`rebind status  ${opts.balancer}  ${stamp}`, ...(reply.ha !== null ? formatHa(reply.ha, now) : []), ...reply.groups.flatMap((g) => [formatGroup(g), ...formatLedger(g, now)])].join('\n');
      };
      try {
        if (!opts.watch) {
          console.log(await show());
          return;
        }
        for (;;) {
          const text = await show();
          process.stdout.write(process.stdout.isTTY ? `\x1b[2J\x1b[H${text}\n` : `${text}\n\n`);
          await new Promise((resolve) => setTimeout(resolve, opts.interval));
        }
      } finally {
        client.close();
      }
    });
}
