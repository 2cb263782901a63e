#!/usr/bin/env node
/**
 * The `rebind` command line: `rebind balancer --config <file>`,
 * `rebind set-strategy`, `rebind set-granularity` (and more in the commands
 * registered below). Every command has --help; a bad flag or value is an
 * error that says what is accepted.
 */
import { Command } from 'commander';
import { registerAdminCommands } from './admin-commands';
import { registerBalancerCommand } from './balancer-command';

export function buildProgram(): Command {
  const program = new Command('rebind')
    .description('Adaptive, on-demand load balancing for gRPC (after TAO).')
    .showHelpAfterError('(run with --help for usage)');
  registerBalancerCommand(program);
  registerAdminCommands(program);
  return program;
}

if (require.main === module) {
  buildProgram().parseAsync(process.argv).catch((err: Error) => {
    console.error(`rebind: ${err.message}`);
    process.exit(1);
  });
}
