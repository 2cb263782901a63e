// Original file: proto/rebind/v1/control.proto

import type { BindingMemberStatus as _rebind_v1_BindingMemberStatus, BindingMemberStatus__Output as _rebind_v1_BindingMemberStatus__Output } from '../../rebind/v1/BindingMemberStatus';
import type { Long } from '@grpc/proto-loader';

export interface BindingStatus {
  'clientId'?: (string);
  'members'?: (_rebind_v1_BindingMemberStatus)[];
  'sinceUnixMs'?: (number | string | Long);
  'via'?: (string);
}

export interface BindingStatus__Output {
  'clientId': (string);
  'members': (_rebind_v1_BindingMemberStatus__Output)[];
  'sinceUnixMs': (number);
  'via': (string);
}
