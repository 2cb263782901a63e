/** The stock-trading contract (proto/stock/v1/stock.proto), loaded once, typed by src/generated. */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as path from 'node:path';
import { packageRoot, PROTO_LOADER_OPTIONS } from '../../src/common/proto';
import type { ProtoGrpcType } from '../../src/generated/stock';

export type { SessionFactoryClient, SessionFactoryHandlers } from '../../src/generated/stock/v1/SessionFactory';
export type { TradingSessionClient, TradingSessionHandlers } from '../../src/generated/stock/v1/TradingSession';
export type { SessionHandle__Output } from '../../src/generated/stock/v1/SessionHandle';

let loaded: ProtoGrpcType['stock']['v1'] | null = null;

export function stockProto(): ProtoGrpcType['stock']['v1'] {
  if (loaded === null) {
    const definition = protoLoader.loadSync(path.join(packageRoot(), 'proto/stock/v1/stock.proto'), PROTO_LOADER_OPTIONS);
    loaded = (grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType).stock.v1;
  }
  return loaded;
}
