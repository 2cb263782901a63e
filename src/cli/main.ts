#!/usr/bin/env node
/**
 * The `rebind` command line: balancer, status, set-strategy,
 * set-granularity, and the stock-trading example's replica and client.
 * Every command has --help; a bad flag or value is an error that says what
 * is accepted.
 */
import { Command } from 'commander';
import { registerAdminCommands } from './admin-commands';
import { registerBalancerCommand } from './balancer-command';
import { registerExampleCommands } from './example-commands';
import { registerStatusCommand } from './status-command';
import { registerXdsCommands } from './xds-command';

export function buildProgram(): Command {
  const program = new Command('rebind')
    .description('Adaptive, on-demand load balancing for gRPC (after TAO).')
    .showHelpAfterError('(run with --help for usage)');
  registerBalancerCommand(program);
  registerStatusCommand(program);
  registerAdminCommands(program);
  registerExampleCommands(program);
  registerXdsCommands(program);
  return program;
}

if (require.main === module) {
  buildProgram().parseAsync(process.argv).catch((err: Error) => {
    console.error(`rebind: ${err.message}`);
    process.exit(1);
  });
}
