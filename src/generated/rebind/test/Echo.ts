// Original file: test/fixtures/echo.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { EchoReply as _rebind_test_EchoReply, EchoReply__Output as _rebind_test_EchoReply__Output } from '../../rebind/test/EchoReply';
import type { EchoRequest as _rebind_test_EchoRequest, EchoRequest__Output as _rebind_test_EchoRequest__Output } from '../../rebind/test/EchoRequest';

export interface EchoClient extends grpc.Client {
  Bidi(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_rebind_test_EchoRequest, _rebind_test_EchoReply__Output>;
  Bidi(options?: grpc.CallOptions): grpc.ClientDuplexStream<_rebind_test_EchoRequest, _rebind_test_EchoReply__Output>;
  bidi(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_rebind_test_EchoRequest, _rebind_test_EchoReply__Output>;
  bidi(options?: grpc.CallOptions): grpc.ClientDuplexStream<_rebind_test_EchoRequest, _rebind_test_EchoReply__Output>;
  
  ClientStream(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_rebind_test_EchoReply__Output>): grpc.ClientWritableStream<_rebind_test_EchoRequest>;
  ClientStream(metadata: grpc.Metadata, callback: grpc.requestCallback<_rebind_test_EchoReply__Output>): grpc.ClientWritableStream<_rebind_test_EchoRequest>;
  ClientStream(options: grpc.CallOptions, callback: grpc.requestCallback<_rebind_test_EchoReply__Output>): grpc.ClientWritableStream<_rebind_test_EchoRequest>;
  ClientStream(callback: grpc.requestCallback<_rebind_test_EchoReply__Output>): grpc.ClientWritableStream<_rebind_test_EchoRequest>;
  clientStream(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_rebind_test_EchoReply__Output>): grpc.ClientWritableStream<_rebind_test_EchoRequest>;
  clientStream(metadata: grpc.Metadata, callback: grpc.requestCallback<_rebind_test_EchoReply__Output>): grpc.ClientWritableStream<_rebind_test_EchoRequest>;
  clientStream(options: grpc.CallOptions, callback: grpc.requestCallback<_rebind_test_EchoReply__Output>): grpc.ClientWritableStream<_rebind_test_EchoRequest>;
  clientStream(callback: grpc.requestCallback<_rebind_test_EchoReply__Output>): grpc.ClientWritableStream<_rebind_test_EchoRequest>;
  
  ServerStream(argument: _rebind_test_EchoRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_rebind_test_EchoReply__Output>;
  ServerStream(argument: _rebind_test_EchoRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_rebind_test_EchoReply__Output>;
  serverStream(argument: _rebind_test_EchoRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_rebind_test_EchoReply__Output>;
  serverStream(argument: _rebind_test_EchoRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_rebind_test_EchoReply__Output>;
  
  Unary(argument: _rebind_test_EchoRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_rebind_test_EchoReply__Output>): grpc.ClientUnaryCall;
  Unary(argument: _rebind_test_EchoRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_rebind_test_EchoReply__Output>): grpc.ClientUnaryCall;
  Unary(argument: _rebind_test_EchoRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_rebind_test_EchoReply__Output>): grpc.ClientUnaryCall;
  Unary(argument: _rebind_test_EchoRequest, callback: grpc.requestCallback<_rebind_test_EchoReply__Output>): grpc.ClientUnaryCall;
  unary(argument: _rebind_test_EchoRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_rebind_test_EchoReply__Output>): grpc.ClientUnaryCall;
  unary(argument: _rebind_test_EchoRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_rebind_test_EchoReply__Output>): grpc.ClientUnaryCall;
  unary(argument: _rebind_test_EchoRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_rebind_test_EchoReply__Output>): grpc.ClientUnaryCall;
  unary(argument: _rebind_test_EchoRequest, callback: grpc.requestCallback<_rebind_test_EchoReply__Output>): grpc.ClientUnaryCall;
  
}

export interface EchoHandlers extends grpc.UntypedServiceImplementation {
  Bidi: grpc.handleBidiStreamingCall<_rebind_test_EchoRequest__Output, _rebind_test_EchoReply>;
  
  ClientStream: grpc.handleClientStreamingCall<_rebind_test_EchoRequest__Output, _rebind_test_EchoReply>;
  
  ServerStream: grpc.handleServerStreamingCall<_rebind_test_EchoRequest__Output, _rebind_test_EchoReply>;
  
  Unary: grpc.handleUnaryCall<_rebind_test_EchoRequest__Output, _rebind_test_EchoReply>;
  
}

export interface EchoDefinition extends grpc.ServiceDefinition {
  Bidi: MethodDefinition<_rebind_test_EchoRequest, _rebind_test_EchoReply, _rebind_test_EchoRequest__Output, _rebind_test_EchoReply__Output>
  ClientStream: MethodDefinition<_rebind_test_EchoRequest, _rebind_test_EchoReply, _rebind_test_EchoRequest__Output, _rebind_test_EchoReply__Output>
  ServerStream: MethodDefinition<_rebind_test_EchoRequest, _rebind_test_EchoReply, _rebind_test_EchoRequest__Output, _rebind_test_EchoReply__Output>
  Unary: MethodDefinition<_rebind_test_EchoRequest, _rebind_test_EchoReply, _rebind_test_EchoRequest__Output, _rebind_test_EchoReply__Output>
}
