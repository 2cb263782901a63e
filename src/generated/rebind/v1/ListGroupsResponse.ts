// Original file: proto/rebind/v1/control.proto

import type { GroupStatus as _rebind_v1_GroupStatus, GroupStatus__Output as _rebind_v1_GroupStatus__Output } from '../../rebind/v1/GroupStatus';
import type { HaStatus as _rebind_v1_HaStatus, HaStatus__Output as _rebind_v1_HaStatus__Output } from '../../rebind/v1/HaStatus';

export interface ListGroupsResponse {
  'groups'?: (_rebind_v1_GroupStatus)[];
  'ha'?: (_rebind_v1_HaStatus | null);
}

export interface ListGroupsResponse__Output {
  'groups': (_rebind_v1_GroupStatus__Output)[];
  'ha': (_rebind_v1_HaStatus__Output | null);
}
