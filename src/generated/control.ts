import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { AdminClient as _rebind_v1_AdminClient, AdminDefinition as _rebind_v1_AdminDefinition } from './rebind/v1/Admin';
import type { Advisory as _rebind_v1_Advisory, Advisory__Output as _rebind_v1_Advisory__Output } from './rebind/v1/Advisory';
import type { Attached as _rebind_v1_Attached, Attached__Output as _rebind_v1_Attached__Output } from './rebind/v1/Attached';
import type { BalancerMessage as _rebind_v1_BalancerMessage, BalancerMessage__Output as _rebind_v1_BalancerMessage__Output } from './rebind/v1/BalancerMessage';
import type { BindingMemberStatus as _rebind_v1_BindingMemberStatus, BindingMemberStatus__Output as _rebind_v1_BindingMemberStatus__Output } from './rebind/v1/BindingMemberStatus';
import type { BindingStatus as _rebind_v1_BindingStatus, BindingStatus__Output as _rebind_v1_BindingStatus__Output } from './rebind/v1/BindingStatus';
import type { ClientLoad as _rebind_v1_ClientLoad, ClientLoad__Output as _rebind_v1_ClientLoad__Output } from './rebind/v1/ClientLoad';
import type { ControlClient as _rebind_v1_ControlClient, ControlDefinition as _rebind_v1_ControlDefinition } from './rebind/v1/Control';
import type { Detach as _rebind_v1_Detach, Detach__Output as _rebind_v1_Detach__Output } from './rebind/v1/Detach';
import type { GroupStatus as _rebind_v1_GroupStatus, GroupStatus__Output as _rebind_v1_GroupStatus__Output } from './rebind/v1/GroupStatus';
import type { HaBalancer as _rebind_v1_HaBalancer, HaBalancer__Output as _rebind_v1_HaBalancer__Output } from './rebind/v1/HaBalancer';
import type { HaLeader as _rebind_v1_HaLeader, HaLeader__Output as _rebind_v1_HaLeader__Output } from './rebind/v1/HaLeader';
import type { HaStatus as _rebind_v1_HaStatus, HaStatus__Output as _rebind_v1_HaStatus__Output } from './rebind/v1/HaStatus';
import type { Hello as _rebind_v1_Hello, Hello__Output as _rebind_v1_Hello__Output } from './rebind/v1/Hello';
import type { ListGroupsRequest as _rebind_v1_ListGroupsRequest, ListGroupsRequest__Output as _rebind_v1_ListGroupsRequest__Output } from './rebind/v1/ListGroupsRequest';
import type { ListGroupsResponse as _rebind_v1_ListGroupsResponse, ListGroupsResponse__Output as _rebind_v1_ListGroupsResponse__Output } from './rebind/v1/ListGroupsResponse';
import type { LoadReport as _rebind_v1_LoadReport, LoadReport__Output as _rebind_v1_LoadReport__Output } from './rebind/v1/LoadReport';
import type { MemberStatus as _rebind_v1_MemberStatus, MemberStatus__Output as _rebind_v1_MemberStatus__Output } from './rebind/v1/MemberStatus';
import type { Method as _rebind_v1_Method, Method__Output as _rebind_v1_Method__Output } from './rebind/v1/Method';
import type { Move as _rebind_v1_Move, Move__Output as _rebind_v1_Move__Output } from './rebind/v1/Move';
import type { Notice as _rebind_v1_Notice, Notice__Output as _rebind_v1_Notice__Output } from './rebind/v1/Notice';
import type { PlanMove as _rebind_v1_PlanMove, PlanMove__Output as _rebind_v1_PlanMove__Output } from './rebind/v1/PlanMove';
import type { PlanStatus as _rebind_v1_PlanStatus, PlanStatus__Output as _rebind_v1_PlanStatus__Output } from './rebind/v1/PlanStatus';
import type { ReplicaMessage as _rebind_v1_ReplicaMessage, ReplicaMessage__Output as _rebind_v1_ReplicaMessage__Output } from './rebind/v1/ReplicaMessage';
import type { SetGranularityRequest as _rebind_v1_SetGranularityRequest, SetGranularityRequest__Output as _rebind_v1_SetGranularityRequest__Output } from './rebind/v1/SetGranularityRequest';
import type { SetStrategyRequest as _rebind_v1_SetStrategyRequest, SetStrategyRequest__Output as _rebind_v1_SetStrategyRequest__Output } from './rebind/v1/SetStrategyRequest';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  rebind: {
    v1: {
      Admin: SubtypeConstructor<typeof grpc.Client, _rebind_v1_AdminClient> & { service: _rebind_v1_AdminDefinition }
      Advisory: MessageTypeDefinition<_rebind_v1_Advisory, _rebind_v1_Advisory__Output>
      Attached: MessageTypeDefinition<_rebind_v1_Attached, _rebind_v1_Attached__Output>
      BalancerMessage: MessageTypeDefinition<_rebind_v1_BalancerMessage, _rebind_v1_BalancerMessage__Output>
      BindingMemberStatus: MessageTypeDefinition<_rebind_v1_BindingMemberStatus, _rebind_v1_BindingMemberStatus__Output>
      BindingStatus: MessageTypeDefinition<_rebind_v1_BindingStatus, _rebind_v1_BindingStatus__Output>
      CallKind: EnumTypeDefinition
      ClientLoad: MessageTypeDefinition<_rebind_v1_ClientLoad, _rebind_v1_ClientLoad__Output>
      Control: SubtypeConstructor<typeof grpc.Client, _rebind_v1_ControlClient> & { service: _rebind_v1_ControlDefinition }
      Detach: MessageTypeDefinition<_rebind_v1_Detach, _rebind_v1_Detach__Output>
      GroupStatus: MessageTypeDefinition<_rebind_v1_GroupStatus, _rebind_v1_GroupStatus__Output>
      HaBalancer: MessageTypeDefinition<_rebind_v1_HaBalancer, _rebind_v1_HaBalancer__Output>
      HaLeader: MessageTypeDefinition<_rebind_v1_HaLeader, _rebind_v1_HaLeader__Output>
      HaStatus: MessageTypeDefinition<_rebind_v1_HaStatus, _rebind_v1_HaStatus__Output>
      Hello: MessageTypeDefinition<_rebind_v1_Hello, _rebind_v1_Hello__Output>
      ListGroupsRequest: MessageTypeDefinition<_rebind_v1_ListGroupsRequest, _rebind_v1_ListGroupsRequest__Output>
      ListGroupsResponse: MessageTypeDefinition<_rebind_v1_ListGroupsResponse, _rebind_v1_ListGroupsResponse__Output>
      LoadReport: MessageTypeDefinition<_rebind_v1_LoadReport, _rebind_v1_LoadReport__Output>
      MemberStatus: MessageTypeDefinition<_rebind_v1_MemberStatus, _rebind_v1_MemberStatus__Output>
      Method: MessageTypeDefinition<_rebind_v1_Method, _rebind_v1_Method__Output>
      Move: MessageTypeDefinition<_rebind_v1_Move, _rebind_v1_Move__Output>
      Notice: MessageTypeDefinition<_rebind_v1_Notice, _rebind_v1_Notice__Output>
      PlanMove: MessageTypeDefinition<_rebind_v1_PlanMove, _rebind_v1_PlanMove__Output>
      PlanStatus: MessageTypeDefinition<_rebind_v1_PlanStatus, _rebind_v1_PlanStatus__Output>
      ReplicaMessage: MessageTypeDefinition<_rebind_v1_ReplicaMessage, _rebind_v1_ReplicaMessage__Output>
      SetGranularityRequest: MessageTypeDefinition<_rebind_v1_SetGranularityRequest, _rebind_v1_SetGranularityRequest__Output>
      SetStrategyRequest: MessageTypeDefinition<_rebind_v1_SetStrategyRequest, _rebind_v1_SetStrategyRequest__Output>
    }
  }
}

