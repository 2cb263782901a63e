// Original file: proto/rebind/v1/control.proto

import type { Attached as _rebind_v1_Attached, Attached__Output as _rebind_v1_Attached__Output } from '../../rebind/v1/Attached';
import type { Advisory as _rebind_v1_Advisory, Advisory__Output as _rebind_v1_Advisory__Output } from '../../rebind/v1/Advisory';
import type { Notice as _rebind_v1_Notice, Notice__Output as _rebind_v1_Notice__Output } from '../../rebind/v1/Notice';

export interface BalancerMessage {
  'attached'?: (_rebind_v1_Attached | null);
  'advisory'?: (_rebind_v1_Advisory | null);
  'notice'?: (_rebind_v1_Notice | null);
  'body'?: "attached"|"advisory"|"notice";
}

export interface BalancerMessage__Output {
  'attached'?: (_rebind_v1_Attached__Output | null);
  'advisory'?: (_rebind_v1_Advisory__Output | null);
  'notice'?: (_rebind_v1_Notice__Output | null);
  'body'?: "attached"|"advisory"|"notice";
}
