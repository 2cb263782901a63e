/**
 * The bootstrap a proxyless gRPC client reads (GRPC_XDS_BOOTSTRAP or
 * GRPC_XDS_BOOTSTRAP_CONFIG, gRFC A27) to reach rebind's xDS server; the
 * client then targets `xds:///<group>`.
 */
import { randomBytes } from 'node:crypto';
import { balancerListProblem } from '../../common/balancers';

/**
 * The bootstrap JSON (as an object) for a client of `group` reaching the
 * balancer's control port at `server`. Several balancers (an HA set) give
 * several `xds_servers`, in the order given: per gRFC A71 the client uses
 * the first it can reach and falls back to the next while it cannot. At most
 * MAX_BALANCERS, no duplicates (an Error says which rule was broken).
 */
export function xdsBootstrap(server: string | readonly string[], group: string, nodeId: string = `rebind-xds-${randomBytes(9).toString('base64url')}`): Record<string, unknown> {
  const servers = typeof server === 'string' ? [server] : server;
  const problem = balancerListProblem('xds-bootstrap --balancer', servers);
  if (problem !== null) throw new Error(problem);
  return {
    xds_servers: servers.map((uri) => ({
      server_uri: uri,
      channel_creds: [{ type: 'insecure' }],
      // gRPC C-core (Python, C++, Ruby, PHP) speaks xDS v3 only when the server says it does.
      server_features: ['xds_v3'],
    })),
    node: { id: nodeId, locality: {}, metadata: { rebind_group: group } },
  };
}
