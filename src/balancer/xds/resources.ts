/**
 * The xDS resources rebind serves (gRFC A27, state of the world over ADS),
 * as plain objects in proto-loader's JSON form (`@type` on every Any).
 * Pure: they depend only on their arguments.
 *
 * For a client whose target is `xds:///<group>`:
 *   - Listener `<group>`: an api_listener (proxyless gRPC) holding an
 *     HttpConnectionManager with an inline RouteConfiguration: one virtual
 *     host for every domain, one route (prefix "") to cluster `<group>`,
 *     and the Router filter last.
 *   - Cluster `<group>`: type EDS over ADS, ROUND_ROBIN, and the balancer
 *     itself as the load-reporting server (`lrs_server: self`): the client
 *     then reports its calls per locality over LRS.
 *   - ClusterLoadAssignment `<group>`: per client, its binding: one locality
 *     per member (sub_zone = member id), locality weight = the member's
 *     share in per-mille, all in priority 0. Proxyless gRPC's round_robin
 *     ignores per-endpoint weights but honours locality weights (grpc's
 *     xds features doc; checked with grpc-js-xds and Python's grpcio).
 */
import { isIP } from 'node:net';
import { parseHostPort } from '../../common/address';

export const LISTENER_TYPE_URL = 'type.googleapis.com/envoy.config.listener.v3.Listener';
export const ROUTE_TYPE_URL = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration';
export const CLUSTER_TYPE_URL = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
export const ENDPOINT_TYPE_URL = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';
const HCM_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER_TYPE_URL = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

/** The resource types a stream may subscribe to. */
export const ADS_TYPE_URLS = [LISTENER_TYPE_URL, ROUTE_TYPE_URL, CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL] as const;
export type AdsTypeUrl = (typeof ADS_TYPE_URLS)[number];

/** Locality region of every rebind endpoint group. */
export const LOCALITY_REGION = 'rebind';

/** A resource in proto-loader JSON form, packed as an Any. */
export type AnyResource = Record<string, unknown> & { '@type': string };

/** The Listener for `xds:///<group>`. */
export function listenerResource(group: string): AnyResource {
  return {
    '@type': LISTENER_TYPE_URL,
    name: group,
    api_listener: {
      api_listener: {
        '@type': HCM_TYPE_URL,
        stat_prefix: group,
        route_config: {
          name: group,
          virtual_hosts: [{ name: group, domains: ['*'], routes: [{ match: { prefix: '' }, route: { cluster: group } }] }],
        },
        http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE_URL } }],
      },
    },
  };
}

/** The Cluster of a group: EDS over ADS, round robin, load reports to the balancer itself. */
export function clusterResource(group: string): AnyResource {
  return {
    '@type': CLUSTER_TYPE_URL,
    name: group,
    type: 'EDS',
    eds_cluster_config: { eds_config: { ads: {} }, service_name: group },
    lb_policy: 'ROUND_ROBIN',
    lrs_server: { self: {} },
  };
}

/** One member of a client's binding, as an xDS locality. */
export interface LocalityMember {
  memberId: string;
  /** host:port of the member; the host must be an IP literal. */
  address: string;
  /** Share in per-mille (1..1000). */
  permille: number;
}

/**
 * The ClusterLoadAssignment of a client's binding: one locality per member
 * (sub_zone = member id), weighted by its share. Members whose host is not
 * an IP literal cannot be sent (gRPC clients resolve no names in EDS) and
 * are left out, named in `skipped`.
 */
export function assignmentResource(group: string, members: readonly LocalityMember[]): { resource: AnyResource; skipped: string[] } {
  const skipped: string[] = [];
  const endpoints = [];
  for (const m of members) {
    const parsed = parseHostPort(m.address);
    if (typeof parsed === 'string' || isIP(parsed.host) === 0) {
      skipped.push(m.address);
      continue;
    }
    endpoints.push({
      locality: { region: LOCALITY_REGION, zone: group, sub_zone: m.memberId },
      lb_endpoints: [{ endpoint: { address: { socket_address: { address: parsed.host, port_value: parsed.port } } }, health_status: 'HEALTHY' }],
      load_balancing_weight: { value: m.permille },
      priority: 0,
    });
  }
  return { resource: { '@type': ENDPOINT_TYPE_URL, cluster_name: group, endpoints }, skipped };
}

/** The member id a locality names, if it is one of rebind's. */
export function memberOfLocality(locality: { region?: string; zone?: string; sub_zone?: string } | null | undefined): string | null {
  if (locality === null || locality === undefined || locality.region !== LOCALITY_REGION) return null;
  return typeof locality.sub_zone === 'string' && locality.sub_zone.length > 0 ? locality.sub_zone : null;
}
