/**
 * The bootstrap a proxyless gRPC client reads (GRPC_XDS_BOOTSTRAP or
 * GRPC_XDS_BOOTSTRAP_CONFIG, gRFC A27) to reach rebind's xDS server; the
 * client then targets `xds:///<group>`.
 */
import { randomBytes } from 'node:crypto';

/** The bootstrap JSON (as an object) for a client of `group` reaching the balancer's control port at `server`. */
export function xdsBootstrap(server: string, group: string, nodeId: string = `rebind-xds-${randomBytes(9).toString('base64url')}`): Record<string, unknown> {
  return {
    xds_servers: [
      {
        server_uri: server,
        channel_creds: [{ type: 'insecure' }],
        // gRPC C-core (Python, C++, Ruby, PHP) speaks xDS v3 only when the server says it does.
        server_features: ['xds_v3'],
      },
    ],
    node: { id: nodeId, locality: {}, metadata: { rebind_group: group } },
  };
}
