// Original file: proto/rebind/v1/control.proto

import type { PlanMove as _rebind_v1_PlanMove, PlanMove__Output as _rebind_v1_PlanMove__Output } from '../../rebind/v1/PlanMove';
import type { Long } from '@grpc/proto-loader';

export interface PlanStatus {
  'atUnixMs'?: (number | string | Long);
  'moveCount'?: (number);
  'moves'?: (_rebind_v1_PlanMove)[];
  'dispersionBefore'?: (number | string);
  'dispersionAfter'?: (number | string);
}

export interface PlanStatus__Output {
  'atUnixMs': (number);
  'moveCount': (number);
  'moves': (_rebind_v1_PlanMove__Output)[];
  'dispersionBefore': (number);
  'dispersionAfter': (number);
}
