// Original file: proto/rebind/v1/control.proto

import type { HaBalancer as _rebind_v1_HaBalancer, HaBalancer__Output as _rebind_v1_HaBalancer__Output } from '../../rebind/v1/HaBalancer';
import type { HaLeader as _rebind_v1_HaLeader, HaLeader__Output as _rebind_v1_HaLeader__Output } from '../../rebind/v1/HaLeader';
import type { Long } from '@grpc/proto-loader';

export interface HaStatus {
  'balancerId'?: (string);
  'etcdUp'?: (boolean);
  'etcdDownSinceUnixMs'?: (number | string | Long);
  'balancers'?: (_rebind_v1_HaBalancer)[];
  'leaders'?: (_rebind_v1_HaLeader)[];
}

export interface HaStatus__Output {
  'balancerId': (string);
  'etcdUp': (boolean);
  'etcdDownSinceUnixMs': (number);
  'balancers': (_rebind_v1_HaBalancer__Output)[];
  'leaders': (_rebind_v1_HaLeader__Output)[];
}
