// Original file: proto/rebind/v1/control.proto

import type { MemberStatus as _rebind_v1_MemberStatus, MemberStatus__Output as _rebind_v1_MemberStatus__Output } from '../../rebind/v1/MemberStatus';
import type { Method as _rebind_v1_Method, Method__Output as _rebind_v1_Method__Output } from '../../rebind/v1/Method';
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
}
