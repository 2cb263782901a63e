// Original file: proto/rebind/v1/control.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { GroupStatus as _rebind_v1_GroupStatus, GroupStatus__Output as _rebind_v1_GroupStatus__Output } from '../../rebind/v1/GroupStatus';
import type { ListGroupsRequest as _rebind_v1_ListGroupsRequest, ListGroupsRequest__Output as _rebind_v1_ListGroupsRequest__Output } from '../../rebind/v1/ListGroupsRequest';
import type { ListGroupsResponse as _rebind_v1_ListGroupsResponse, ListGroupsResponse__Output as _rebind_v1_ListGroupsResponse__Output } from '../../rebind/v1/ListGroupsResponse';
import type { SetGranularityRequest as _rebind_v1_SetGranularityRequest, SetGranularityRequest__Output as _rebind_v1_SetGranularityRequest__Output } from '../../rebind/v1/SetGranularityRequest';
import type { SetStrategyRequest as _rebind_v1_SetStrategyRequest, SetStrategyRequest__Output as _rebind_v1_SetStrategyRequest__Output } from '../../rebind/v1/SetStrategyRequest';

export interface AdminClient extends grpc.Client {
  ListGroups(argument: _rebind_v1_ListGroupsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_rebind_v1_ListGroupsResponse__Output>): grpc.ClientUnaryCall;
  ListGroups(argument: _rebind_v1_ListGroupsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_rebind_v1_ListGroupsResponse__Output>): grpc.ClientUnaryCall;
  ListGroups(argument: _rebind_v1_ListGroupsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_rebind_v1_ListGroupsResponse__Output>): grpc.ClientUnaryCall;
  ListGroups(argument: _rebind_v1_ListGroupsRequest, callback: grpc.requestCallback<_rebind_v1_ListGroupsResponse__Output>): grpc.ClientUnaryCall;
  listGroups(argument: _rebind_v1_ListGroupsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_rebind_v1_ListGroupsResponse__Output>): grpc.ClientUnaryCall;
  listGroups(argument: _rebind_v1_ListGroupsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_rebind_v1_ListGroupsResponse__Output>): grpc.ClientUnaryCall;
  listGroups(argument: _rebind_v1_ListGroupsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_rebind_v1_ListGroupsResponse__Output>): grpc.ClientUnaryCall;
  listGroups(argument: _rebind_v1_ListGroupsRequest, callback: grpc.requestCallback<_rebind_v1_ListGroupsResponse__Output>): grpc.ClientUnaryCall;
  
  SetGranularity(argument: _rebind_v1_SetGranularityRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_rebind_v1_GroupStatus__Output>): grpc.ClientUnaryCall;
  SetGranularity(argument: _rebind_v1_SetGranularityRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_rebind_v1_GroupStatus__Output>): grpc.ClientUnaryCall;
  SetGranularity(argument: _rebind_v1_SetGranularityRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_rebind_v1_GroupStatus__Output>): grpc.ClientUnaryCall;
  SetGranularity(argument: _rebind_v1_SetGranularityRequest, callback: grpc.requestCallback<_rebind_v1_GroupStatus__Output>): grpc.ClientUnaryCall;
  setGranularity(argument: _rebind_v1_SetGranularityRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_rebind_v1_GroupStatus__Output>): grpc.ClientUnaryCall;
  setGranularity(argument: _rebind_v1_SetGranularityRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_rebind_v1_GroupStatus__Output>): grpc.ClientUnaryCall;
  setGranularity(argument: _rebind_v1_SetGranularityRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_rebind_v1_GroupStatus__Output>): grpc.ClientUnaryCall;
  setGranularity(argument: _rebind_v1_SetGranularityRequest, callback: grpc.requestCallback<_rebind_v1_GroupStatus__Output>): grpc.ClientUnaryCall;
  
  SetStrategy(argument: _rebind_v1_SetStrategyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_rebind_v1_GroupStatus__Output>): grpc.ClientUnaryCall;
  SetStrategy(argument: _rebind_v1_SetStrategyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_rebind_v1_GroupStatus__Output>): grpc.ClientUnaryCall;
  SetStrategy(argument: _rebind_v1_SetStrategyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_rebind_v1_GroupStatus__Output>): grpc.ClientUnaryCall;
  SetStrategy(argument: _rebind_v1_SetStrategyRequest, callback: grpc.requestCallback<_rebind_v1_GroupStatus__Output>): grpc.ClientUnaryCall;
  setStrategy(argument: _rebind_v1_SetStrategyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_rebind_v1_GroupStatus__Output>): grpc.ClientUnaryCall;
  setStrategy(argument: _rebind_v1_SetStrategyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_rebind_v1_GroupStatus__Output>): grpc.ClientUnaryCall;
  setStrategy(argument: _rebind_v1_SetStrategyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_rebind_v1_GroupStatus__Output>): grpc.ClientUnaryCall;
  setStrategy(argument: _rebind_v1_SetStrategyRequest, callback: grpc.requestCallback<_rebind_v1_GroupStatus__Output>): grpc.ClientUnaryCall;
  
}

export interface AdminHandlers extends grpc.UntypedServiceImplementation {
  ListGroups: grpc.handleUnaryCall<_rebind_v1_ListGroupsRequest__Output, _rebind_v1_ListGroupsResponse>;
  
  SetGranularity: grpc.handleUnaryCall<_rebind_v1_SetGranularityRequest__Output, _rebind_v1_GroupStatus>;
  
  SetStrategy: grpc.handleUnaryCall<_rebind_v1_SetStrategyRequest__Output, _rebind_v1_GroupStatus>;
  
}

export interface AdminDefinition extends grpc.ServiceDefinition {
  ListGroups: MethodDefinition<_rebind_v1_ListGroupsRequest, _rebind_v1_ListGroupsResponse, _rebind_v1_ListGroupsRequest__Output, _rebind_v1_ListGroupsResponse__Output>
  SetGranularity: MethodDefinition<_rebind_v1_SetGranularityRequest, _rebind_v1_GroupStatus, _rebind_v1_SetGranularityRequest__Output, _rebind_v1_GroupStatus__Output>
  SetStrategy: MethodDefinition<_rebind_v1_SetStrategyRequest, _rebind_v1_GroupStatus, _rebind_v1_SetStrategyRequest__Output, _rebind_v1_GroupStatus__Output>
}
