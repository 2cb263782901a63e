/** `rebind set-strategy` and `rebind set-granularity`: run-time changes through the Admin API. */
import { Option, type Command } from 'commander';
import { DEFAULT_CONTROL_LISTEN, GRANULARITIES } from '../balancer/config';
import { strategyNames } from '../balancer/strategies/index';
import type { GroupStatus__Output } from '../generated/rebind/v1/GroupStatus';
import { adminCall, adminClient, formatGroup } from './admin-client';
import { addControlAuthOptions, controlCredentials, controlToken, hostPort, type ControlAuthOptions } from './options';

const DEFAULT_CONTROL = DEFAULT_CONTROL_LISTEN;

export function registerAdminCommands(program: Command): void {
  addControlAuthOptions(program
    .command('set-strategy')
    .description("Change a group's strategy at run time (takes effect within one report interval).")
    .option('-b, --balancer <host:port>', "balancer's control address", hostPort, DEFAULT_CONTROL)
    .requiredOption('-g, --group <name>', 'replica group')
    .addOption(new Option('-s, --strategy <name>', 'strategy').choices(strategyNames()).makeOptionMandatory())
    .option('-p, --params <json>', 'strategy parameters as a JSON object, e.g. \'{"tolerance":0.05}\'', ''))
    .action(async (opts: { balancer: string; group: string; strategy: string; params: string } & ControlAuthOptions) => {
      const client = adminClient(opts.balancer, controlCredentials(opts));
      try {
        const status = await adminCall<GroupStatus__Output>(client, opts.balancer, 'SetStrategy', { group: opts.group, strategy: opts.strategy, paramsJson: opts.params }, controlToken(opts));
        console.log(formatGroup(status));
      } finally {
        client.close();
      }
    });

  addControlAuthOptions(program
    .command('set-granularity')
    .description("Change a group's binding granularity at run time.")
    .option('-b, --balancer <host:port>', "balancer's control address", hostPort, DEFAULT_CONTROL)
    .requiredOption('-g, --group <name>', 'replica group')
    .addOption(new Option('--granularity <g>', 'binding granularity').choices([...GRANULARITIES]).makeOptionMandatory()))
    .action(async (opts: { balancer: string; group: string; granularity: string } & ControlAuthOptions) => {
      const client = adminClient(opts.balancer, controlCredentials(opts));
      try {
        const status = await adminCall<GroupStatus__Output>(client, opts.balancer, 'SetGranularity', { group: opts.group, granularity: opts.granularity }, controlToken(opts));
        console.log(formatGroup(status));
      } finally {
        client.close();
      }
    });
}
