// Original file: proto/rebind/v1/control.proto

import type { MemberStatus as _rebind_v1_MemberStatus, MemberStatus__Output as _rebind_v1_MemberStatus__Output } from '../../rebind/v1/MemberStatus';
import type { Method as _rebind_v1_Method, Method__Output as _rebind_v1_Method__Output } from '../../rebind/v1/Method';
import type { BindingStatus as _rebind_v1_BindingStatus, BindingStatus__Output as _rebind_v1_BindingStatus__Output } from '../../rebind/v1/BindingStatus';
import type { PlanStatus as _rebind_v1_PlanStatus, PlanStatus__Output as _rebind_v1_PlanStatus__Output } from '../../rebind/v1/PlanStatus';
import type { Long } from '@grpc/proto-loader';

export interface GroupStatus {
  'name'?: (string);
  'granularity'?: (string);
  'strategy'?: (string);
  'strategyParamsJson'?: (string);
  'metric'?: (string);
  'members'?: (_rebind_v1_MemberStatus)[];
  'methods'?: (_rebind_v1_Method)[];
  'forwards'?: (number | string | Long);
  'proxiedCalls'?: (number | string | Long);
  'advisories'?: (number | string | Long);
  'bindings'?: (_rebind_v1_BindingStatus)[];
  'bindingCount'?: (number);
  'bindingSizes'?: (number)[];
  'lastPlan'?: (_rebind_v1_PlanStatus | null);
}

export interface GroupStatus__Output {
  'name': (string);
  'granularity': (string);
  'strategy': (string);
  'strategyParamsJson': (string);
  'metric': (string);
  'members': (_rebind_v1_MemberStatus__Output)[];
  'methods': (_rebind_v1_Method__Output)[];
  'forwards': (number);
  'proxiedCalls': (number);
  'advisories': (number);
  'bindings': (_rebind_v1_BindingStatus__Output)[];
  'bindingCount': (number);
  'bindingSizes': (number)[];
  'lastPlan': (_rebind_v1_PlanStatus__Output | null);
}
