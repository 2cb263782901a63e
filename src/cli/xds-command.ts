/** `rebind xds-bootstrap`: the bootstrap JSON for a proxyless gRPC client of a group. */
import type { Command } from 'commander';
import { DEFAULT_CONTROL_LISTEN } from '../balancer/config';
import { xdsBootstrap } from '../balancer/xds/bootstrap';
import { MAX_NODE_ID_CHARS } from '../balancer/xds/ads';
import { balancerListProblem, MAX_BALANCERS } from '../common/balancers';
import { hostPort } from './options';

const GROUP = /^[A-Za-z0-9._/-]{1,200}$/;
const NODE_ID = /^[\x21-\x7e]+$/;

export function registerXdsCommands(program: Command): void {
  program
    .command('xds-bootstrap')
    .description('Print the xDS bootstrap JSON for a gRPC client in any language: save it, point GRPC_XDS_BOOTSTRAP at it, and target xds:///<group>.')
    .option(
      '-b, --balancer <host:port>',
      `balancer's control address (where xDS is served); repeat it for several balancers (an HA set, up to ${MAX_BALANCERS}): each becomes one of xds_servers, tried in order (gRFC A71) (default: ${DEFAULT_CONTROL_LISTEN})`,
      (value: string, previous: string[] | undefined) => [...(previous ?? []), hostPort(value)],
    )
    .requiredOption('-g, --group <name>', 'replica group the client calls')
    .option('--node-id <id>', `the client's node id (1-${MAX_NODE_ID_CHARS} printable characters, no spaces; default: a random one)`)
    .action((opts: { balancer?: string[]; group: string; nodeId?: string }) => {
      const balancers = opts.balancer ?? [DEFAULT_CONTROL_LISTEN];
      const problem = balancerListProblem('--balancer', balancers);
      if (problem !== null) {
        console.error(`rebind xds-bootstrap: ${problem}`);
        process.exit(2);
      }
      if (!GROUP.test(opts.group)) {
        console.error(`rebind xds-bootstrap: --group must be 1-200 of letters, digits, . _ / -; got ${JSON.stringify(opts.group)}`);
        process.exit(2);
      }
      if (opts.nodeId !== undefined && (opts.nodeId.length > MAX_NODE_ID_CHARS || !NODE_ID.test(opts.nodeId))) {
        console.error(`rebind xds-bootstrap: --node-id must be 1-${MAX_NODE_ID_CHARS} printable characters without spaces`);
        process.exit(2);
      }
      console.log(JSON.stringify(xdsBootstrap(balancers, opts.group, opts.nodeId), null, 2));
    });
}
