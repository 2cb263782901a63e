/**
 * The xDS service definitions (ADS, LRS) and the resource types they carry,
 * loaded with proto-loader from the .proto files that ship in
 * `@grpc/grpc-js-xds` (deps/: envoy-api, xds, googleapis,
 * protoc-gen-validate). That layout is not a public API of the package, so
 * its version is pinned exactly in package.json; loading takes ~0.3 s and
 * happens once, when the first balancer with xDS starts.
 */
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import * as path from 'node:path';

const FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/load_stats/v3/lrs.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
];

/** Where the xDS .proto files are. */
export function xdsProtoDirs(): string[] {
  const root = path.dirname(require.resolve('@grpc/grpc-js-xds/package.json'));
  return ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(root, 'deps', d));
}

export interface XdsServices {
  ads: grpc.ServiceDefinition;
  lrs: grpc.ServiceDefinition;
}

let loaded: XdsServices | null = null;

/** The ADS and LRS service definitions (messages in proto-loader JSON form: snake_case, `@type` Anys, enums as names). */
export function xdsServices(): XdsServices {
  if (loaded !== null) return loaded;
  const definition = loadSync(FILES, { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, json: true, includeDirs: xdsProtoDirs() });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    envoy: { service: { discovery: { v3: { AggregatedDiscoveryService: grpc.ServiceClientConstructor } }; load_stats: { v3: { LoadReportingService: grpc.ServiceClientConstructor } } } };
  };
  loaded = { ads: pkg.envoy.service.discovery.v3.AggregatedDiscoveryService.service, lrs: pkg.envoy.service.load_stats.v3.LoadReportingService.service };
  return loaded;
}
