// Original file: proto/rebind/v1/control.proto

import type { Method as _rebind_v1_Method, Method__Output as _rebind_v1_Method__Output } from '../../rebind/v1/Method';

export interface Hello {
  'protocolVersion'?: (number);
  'group'?: (string);
  'address'?: (string);
  'methods'?: (_rebind_v1_Method)[];
  'replicaId'?: (string);
  'resumeSecret'?: (string);
}

export interface Hello__Output {
  'protocolVersion': (number);
  'group': (string);
  'address': (string);
  'methods': (_rebind_v1_Method__Output)[];
  'replicaId': (string);
  'resumeSecret': (string);
}
