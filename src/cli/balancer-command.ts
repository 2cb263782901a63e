/** `rebind balancer --config <file>`: runs a balancer until SIGINT/SIGTERM. */
import type { Command } from 'commander';
import { Balancer } from '../balancer/balancer';
import { parseBalancerConfig, serializeBalancerConfig } from '../balancer/config';
import { readConfigFile } from '../balancer/config-file';
import { rootLogger } from '../common/logger';
import { availableCpus, oneCoreAdvice } from '../common/runtime';
import { onShutdown } from './lifecycle';
import { hostPort } from './options';

/** Exit code for an invalid configuration. */
export const EXIT_CONFIG = 2;

export function registerBalancerCommand(program: Command): void {
  program
    .command('balancer')
    .description('Run a balancer from a configuration file (JSON or YAML).')
    .requiredOption('-c, --config <file>', 'configuration file (.json, .yaml or .yml)')
    .option('--listen <host:port>', 'override the data address clients target', hostPort)
    .option('--control-listen <host:port>', 'override the control address replicas attach to', hostPort)
    .option('--admin-listen <host:port>', "override the admin HTTP address (metrics, dashboard); 'off' for none", (v: string) => (v === 'off' ? 'off' : hostPort(v)))
    .option('--check', 'validate the configuration and exit')
    .option('--exit-with-parent', 'exit when the parent process closes our stdin')
    .action(async (opts: { config: string; listen?: string; controlListen?: string; adminListen?: string; check?: boolean; exitWithParent?: boolean }) => {
      const result = readConfigFile(opts.config);
      if (!result.ok) {
        console.error(`rebind balancer: invalid configuration (${result.errors.length} problem${result.errors.length > 1 ? 's' : ''}):`);
        for (const e of result.errors) console.error(`  - ${e}`);
        process.exit(EXIT_CONFIG);
      }
      // The flags override the file, and are validated with it.
      const raw = serializeBalancerConfig(result.value);
      if (opts.listen) raw['listen'] = opts.listen;
      if (opts.controlListen) raw['controlListen'] = opts.controlListen;
      if (opts.adminListen) raw['adminListen'] = opts.adminListen === 'off' ? null : opts.adminListen;
      const parsed = parseBalancerConfig(raw);
      if (!parsed.ok) {
        console.error(`rebind balancer: invalid configuration (${parsed.errors.length} problem${parsed.errors.length > 1 ? 's' : ''}):`);
        for (const e of parsed.errors) console.error(`  - ${e}`);
        process.exit(EXIT_CONFIG);
      }
      const config = parsed.value;
      if (opts.check) {
        console.log(`${opts.config}: valid (${config.groups.length} group${config.groups.length === 1 ? '' : 's'})`);
        return;
      }
      let balancer: Balancer;
      try {
        balancer = await Balancer.start({ config });
      } catch (err) {
        console.error(`rebind balancer: cannot start: ${(err as Error).message}`);
        process.exit(1);
      }
      const scheme = config.security.controlTls !== null ? 'https' : 'http';
      const cpus = availableCpus();
      const advice = oneCoreAdvice(cpus, process.execArgv);
      if (advice !== null) rootLogger().warn({ cpus, execArgv: process.execArgv }, advice);
      console.log(`balancer listening: data ${balancer.address}, control ${balancer.controlAddress}${balancer.adminAddress ? `, admin ${scheme}://${balancer.adminAddress}/` : ''}`);
      onShutdown(async (reason) => {
        rootLogger().info({ reason }, 'balancer stopping');
        await balancer.stop();
      }, opts.exitWithParent === true);
    });
}
