/** `rebind replica` and `rebind client`: the stock-trading example's processes. */
import { InvalidArgumentError, type Command } from 'commander';
import { startStockReplica } from '../../examples/stock-trading/replica';
import { Trader } from '../../examples/stock-trading/trader';
import { DEFAULT_CONTROL_LISTEN, DEFAULT_LISTEN } from '../balancer/config';
import { balancerListProblem, balancerTarget, MAX_BALANCERS } from '../common/balancers';
import { onShutdown } from './lifecycle';
import { addControlAuthOptions, controlCredentials, controlToken, hostPort, positiveInteger, type ControlAuthOptions } from './options';

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a positive number, got "${value}"`);
  return n;
}

export function registerExampleCommands(program: Command): void {
  addControlAuthOptions(program
    .command('replica')
    .description('Run a stock-trading replica (SessionFactory + TradingSession) attached to a balancer.')
    .option(
      '-b, --balancer <host:port>',
      `balancer's control address; repeat it for several balancers (an HA set, up to ${MAX_BALANCERS}): the replica attaches to each (default: ${DEFAULT_CONTROL_LISTEN})`,
      (value: string, previous: string[] | undefined) => [...(previous ?? []), hostPort(value)],
    )
    .option('-g, --group <name>', 'replica group', 'stock')
    .option('-l, --listen <host:port>', 'address to serve on (port 0 picks one)', hostPort, '127.0.0.1:0')
    .option('-n, --name <name>', 'replica name shown to clients', 'replica')
    .option('--factory-cost-us <us>', 'CPU microseconds each CreateSession costs', positiveInteger, 200)
    .option('--exit-with-parent', 'exit when the parent process closes our stdin'))
    .action(async (opts: { balancer?: string[]; group: string; listen: string; name: string; factoryCostUs: number; exitWithParent?: boolean } & ControlAuthOptions) => {
      const balancers = opts.balancer ?? [DEFAULT_CONTROL_LISTEN];
      const problem = balancerListProblem('--balancer', balancers);
      if (problem !== null) throw new InvalidArgumentError(problem);
      const token = controlToken(opts);
      const replica = await startStockReplica({
        name: opts.name,
        balancer: balancers.length === 1 ? balancers[0]! : balancers,
        group: opts.group,
        listen: opts.listen,
        factoryCostUs: opts.factoryCostUs,
        credentials: controlCredentials(opts),
        ...(token !== undefined ? { token } : {}),
      });
      console.log(`replica ${opts.name} serving on ${replica.address}, member ${replica.replica.memberId} of group ${opts.group} at ${balancers.join(', ')}`);
      onShutdown(() => replica.stop(), opts.exitWithParent === true);
    });

  program
    .command('client')
    .description('Run a stock-trading client: opens sessions through the balancer and trades on them.')
    .option(
      '-a, --balancer-address <host:port>',
      `balancer's data address (what clients target); repeat it for several balancers given by IP address (the client fails over between them) (default: ${DEFAULT_LISTEN})`,
      (value: string, previous: string[] | undefined) => [...(previous ?? []), hostPort(value)],
    )
    .option('-n, --name <name>', 'trader name', 'trader')
    .option('-r, --rate <sessions/s>', 'sessions started per second', positiveNumber, 5)
    .option('-d, --duration <s>', 'stop after this many seconds (default: until Ctrl-C)', positiveInteger)
    .option('--json', 'print events and the final statistics as JSON lines')
    .option('--exit-with-parent', 'exit when the parent process closes our stdin')
    .action((opts: { balancerAddress?: string[]; name: string; rate: number; duration?: number; json?: boolean; exitWithParent?: boolean }) => {
      const print = (event: Record<string, unknown>, text: string) => console.log(opts.json ? JSON.stringify(event) : text);
      let target: string;
      try {
        target = balancerTarget(opts.balancerAddress ?? [DEFAULT_LISTEN]);
      } catch (err) {
        throw new InvalidArgumentError(`--balancer-address: ${(err as Error).message}`);
      }
      const trader = new Trader({
        balancer: target,
        name: opts.name,
        sessionsPerS: opts.rate,
        onRebind: (e) => print({ event: 'rebind', trader: opts.name, ...e }, `${opts.name}: re-bound ${e.from} -> ${e.to} (${e.reason})`),
      });
      void trader.openSession().then((handle) => {
        print({ event: 'ready', trader: opts.name, clientId: trader.clientId, replica: handle?.replica ?? null }, `${opts.name}: first session on ${handle?.replica ?? '(failed)'}; trading at ${opts.rate} sessions/s`);
        trader.start();
      });
      const stop = async () => {
        const stats = await trader.stop();
        print(
          { event: 'stats', ...stats },
          `${opts.name}: ${stats.completed}/${stats.sessions} sessions completed, ${stats.calls} calls, ${stats.failedCalls} failed, ${stats.rebinds} re-binds; sessions by replica ${JSON.stringify(stats.sessionsByReplica)}`,
        );
      };
      onShutdown(stop, opts.exitWithParent === true);
      if (opts.duration !== undefined) setTimeout(() => process.kill(process.pid, 'SIGTERM'), opts.duration * 1000);
    });
}
