// Original file: proto/rebind/v1/control.proto

import type { Hello as _rebind_v1_Hello, Hello__Output as _rebind_v1_Hello__Output } from '../../rebind/v1/Hello';
import type { LoadReport as _rebind_v1_LoadReport, LoadReport__Output as _rebind_v1_LoadReport__Output } from '../../rebind/v1/LoadReport';
import type { Detach as _rebind_v1_Detach, Detach__Output as _rebind_v1_Detach__Output } from '../../rebind/v1/Detach';

export interface ReplicaMessage {
  'hello'?: (_rebind_v1_Hello | null);
  'report'?: (_rebind_v1_LoadReport | null);
  'detach'?: (_rebind_v1_Detach | null);
  'body'?: "hello"|"report"|"detach";
}

export interface ReplicaMessage__Output {
  'hello'?: (_rebind_v1_Hello__Output | null);
  'report'?: (_rebind_v1_LoadReport__Output | null);
  'detach'?: (_rebind_v1_Detach__Output | null);
  'body'?: "hello"|"report"|"detach";
}
