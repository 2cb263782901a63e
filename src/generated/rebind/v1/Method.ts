// Original file: proto/rebind/v1/control.proto

import type { CallKind as _rebind_v1_CallKind, CallKind__Output as _rebind_v1_CallKind__Output } from '../../rebind/v1/CallKind';

export interface Method {
  'path'?: (string);
  'kind'?: (_rebind_v1_CallKind);
}

export interface Method__Output {
  'path': (string);
  'kind': (_rebind_v1_CallKind__Output);
}
