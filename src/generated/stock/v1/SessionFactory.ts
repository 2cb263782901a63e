// Original file: proto/stock/v1/stock.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { CreateSessionRequest as _stock_v1_CreateSessionRequest, CreateSessionRequest__Output as _stock_v1_CreateSessionRequest__Output } from '../../stock/v1/CreateSessionRequest';
import type { SessionHandle as _stock_v1_SessionHandle, SessionHandle__Output as _stock_v1_SessionHandle__Output } from '../../stock/v1/SessionHandle';

export interface SessionFactoryClient extends grpc.Client {
  CreateSession(argument: _stock_v1_CreateSessionRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_stock_v1_SessionHandle__Output>): grpc.ClientUnaryCall;
  CreateSession(argument: _stock_v1_CreateSessionRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_stock_v1_SessionHandle__Output>): grpc.ClientUnaryCall;
  CreateSession(argument: _stock_v1_CreateSessionRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_stock_v1_SessionHandle__Output>): grpc.ClientUnaryCall;
  CreateSession(argument: _stock_v1_CreateSessionRequest, callback: grpc.requestCallback<_stock_v1_SessionHandle__Output>): grpc.ClientUnaryCall;
  createSession(argument: _stock_v1_CreateSessionRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_stock_v1_SessionHandle__Output>): grpc.ClientUnaryCall;
  createSession(argument: _stock_v1_CreateSessionRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_stock_v1_SessionHandle__Output>): grpc.ClientUnaryCall;
  createSession(argument: _stock_v1_CreateSessionRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_stock_v1_SessionHandle__Output>): grpc.ClientUnaryCall;
  createSession(argument: _stock_v1_CreateSessionRequest, callback: grpc.requestCallback<_stock_v1_SessionHandle__Output>): grpc.ClientUnaryCall;
  
}

export interface SessionFactoryHandlers extends grpc.UntypedServiceImplementation {
  CreateSession: grpc.handleUnaryCall<_stock_v1_CreateSessionRequest__Output, _stock_v1_SessionHandle>;
  
}

export interface SessionFactoryDefinition extends grpc.ServiceDefinition {
  CreateSession: MethodDefinition<_stock_v1_CreateSessionRequest, _stock_v1_SessionHandle, _stock_v1_CreateSessionRequest__Output, _stock_v1_SessionHandle__Output>
}
