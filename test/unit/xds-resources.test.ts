/** The xDS resources rebind serves (issue 13), exactly. */
import { describe, expect, it } from 'vitest';
import { xdsClientId, isXdsClientId } from '../../src/balancer/xds/ads';
import { assignmentResource, clusterResource, listenerResource, memberOfLocality } from '../../src/balancer/xds/resources';
import { CLIENT_ID_PATTERN } from '../../src/common/wire';

describe('xDS resources', () => {
  it('the Listener is an api_listener routing every domain and path to the group\'s cluster, Router filter last', () => {
    expect(listenerResource('stock.SessionFactory')).toEqual({
      '@type': 'type.googleapis.com/envoy.config.listener.v3.Listener',
      name: 'stock.SessionFactory',
      api_listener: {
        api_listener: {
          '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
          stat_prefix: 'stock.SessionFactory',
          route_config: {
            name: 'stock.SessionFactory',
            virtual_hosts: [{ name: 'stock.SessionFactory', domains: ['*'], routes: [{ match: { prefix: '' }, route: { cluster: 'stock.SessionFactory' } }] }],
          },
          http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
        },
      },
    });
  });

  it('the Cluster is EDS over ADS, round robin, reporting load to the balancer itself', () => {
    expect(clusterResource('echo')).toEqual({
      '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
      name: 'echo',
      type: 'EDS',
      eds_cluster_config: { eds_config: { ads: {} }, service_name: 'echo' },
      lb_policy: 'ROUND_ROBIN',
      lrs_server: { self: {} },
    });
  });

  it('an assignment has one locality per member weighted by its share; members without an IP are left out and named', () => {
    const { resource, skipped } = assignmentResource('echo', [
      { memberId: 'm1', address: '127.0.0.1:7001', permille: 700 },
      { memberId: 'm2', address: '[::1]:7002', permille: 200 },
      { memberId: 'm3', address: 'replica.local:7003', permille: 100 },
    ]);
    expect(skipped).toEqual(['replica.local:7003']);
    expect(resource).toEqual({
      '@type': 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
      cluster_name: 'echo',
      endpoints: [
        {
          locality: { region: 'rebind', zone: 'echo', sub_zone: 'm1' },
          lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 7001 } } }, health_status: 'HEALTHY' }],
          load_balancing_weight: { value: 700 },
          priority: 0,
        },
        {
          locality: { region: 'rebind', zone: 'echo', sub_zone: 'm2' },
          lb_endpoints: [{ endpoint: { address: { socket_address: { address: '::1', port_value: 7002 } } }, health_status: 'HEALTHY' }],
          load_balancing_weight: { value: 200 },
          priority: 0,
        },
      ],
    });
    expect(memberOfLocality({ region: 'rebind', zone: 'echo', sub_zone: 'm2' })).toBe('m2');
    expect(memberOfLocality({ region: 'elsewhere', sub_zone: 'm2' })).toBeNull();
    expect(memberOfLocality(null)).toBeNull();
  });

  it('an xDS node gets a stable client id of its own kind, valid wherever client ids are', () => {
    const id = xdsClientId('trader-7');
    expect(id).toBe(xdsClientId('trader-7'));
    expect(id).not.toBe(xdsClientId('trader-8'));
    expect(id).toMatch(CLIENT_ID_PATTERN);
    expect(isXdsClientId(id)).toBe(true);
    expect(isXdsClientId('abcdEFGH1234')).toBe(false);
  });
});
