// Original file: proto/rebind/v1/control.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { BalancerMessage as _rebind_v1_BalancerMessage, BalancerMessage__Output as _rebind_v1_BalancerMessage__Output } from '../../rebind/v1/BalancerMessage';
import type { ReplicaMessage as _rebind_v1_ReplicaMessage, ReplicaMessage__Output as _rebind_v1_ReplicaMessage__Output } from '../../rebind/v1/ReplicaMessage';

export interface ControlClient extends grpc.Client {
  Attach(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_rebind_v1_ReplicaMessage, _rebind_v1_BalancerMessage__Output>;
  Attach(options?: grpc.CallOptions): grpc.ClientDuplexStream<_rebind_v1_ReplicaMessage, _rebind_v1_BalancerMessage__Output>;
  attach(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_rebind_v1_ReplicaMessage, _rebind_v1_BalancerMessage__Output>;
  attach(options?: grpc.CallOptions): grpc.ClientDuplexStream<_rebind_v1_ReplicaMessage, _rebind_v1_BalancerMessage__Output>;
  
}

export interface ControlHandlers extends grpc.UntypedServiceImplementation {
  Attach: grpc.handleBidiStreamingCall<_rebind_v1_ReplicaMessage__Output, _rebind_v1_BalancerMessage>;
  
}

export interface ControlDefinition extends grpc.ServiceDefinition {
  Attach: MethodDefinition<_rebind_v1_ReplicaMessage, _rebind_v1_BalancerMessage, _rebind_v1_ReplicaMessage__Output, _rebind_v1_BalancerMessage__Output>
}
