/** `rebind status`: groups, members, raw and dampened loads from the admin API. */
import type { Command } from 'commander';
import { DEFAULT_CONTROL_LISTEN } from '../balancer/config';
import type { ListGroupsResponse__Output } from '../generated/rebind/v1/ListGroupsResponse';
import { adminCall, adminClient, formatGroup } from './admin-client';
import { addControlAuthOptions, controlCredentials, controlToken, hostPort, positiveInteger, type ControlAuthOptions } from './options';

export function registerStatusCommand(program: Command): void {
  addControlAuthOptions(program
    .command('status')
    .description('Show groups, members and their raw and dampened loads (--watch for a live table).')
    .option('-b, --balancer <host:port>', "balancer's control address", hostPort, DEFAULT_CONTROL_LISTEN)
    .option('-g, --group <name>', 'only this group', '')
    .option('-w, --watch', 'refresh until Ctrl-C')
    .option('-i, --interval <ms>', 'refresh period with --watch', positiveInteger, 1000)
    .option('--json', 'print the admin API answer as JSON'))
    .action(async (opts: { balancer: string; group: string; watch?: boolean; interval: number; json?: boolean } & ControlAuthOptions) => {
      const client = adminClient(opts.balancer, controlCredentials(opts));
      const token = controlToken(opts);
      const show = async () => {
        const reply = await adminCall<ListGroupsResponse__Output>(client, opts.balancer, 'ListGroups', { group: opts.group }, token);
        if (opts.json) return JSON.stringify(reply);
        const stamp = new Date().toISOString().slice(11, 19);
        return [`rebind status  ${opts.balancer}  ${stamp}`, ...reply.groups.map(formatGroup)].join('\n');
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
