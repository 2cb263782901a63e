// Original file: proto/rebind/v1/control.proto

import type { GroupStatus as _rebind_v1_GroupStatus, GroupStatus__Output as _rebind_v1_GroupStatus__Output } from '../../rebind/v1/GroupStatus';

export interface ListGroupsResponse {
  'groups'?: (_rebind_v1_GroupStatus)[];
}

export interface ListGroupsResponse__Output {
  'groups': (_rebind_v1_GroupStatus__Output)[];
}
