// Original file: proto/rebind/v1/control.proto

import type { Long } from '@grpc/proto-loader';

export interface MemberStatus {
  'memberId'?: (string);
  'address'?: (string);
  'state'?: (string);
  'rawLoad'?: (number | string);
  'dampenedLoad'?: (number | string);
  'clients'?: (number);
  'reports'?: (number | string | Long);
  'lastReportUnixMs'?: (number | string | Long);
  'callsPerS'?: (number | string);
  'inFlight'?: (number);
}

export interface MemberStatus__Output {
  'memberId': (string);
  'address': (string);
  'state': (string);
  'rawLoad': (number);
  'dampenedLoad': (number);
  'clients': (number);
  'reports': (number);
  'lastReportUnixMs': (number);
  'callsPerS': (number);
  'inFlight': (number);
}
