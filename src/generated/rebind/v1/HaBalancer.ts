// Original file: proto/rebind/v1/control.proto

import type { Long } from '@grpc/proto-loader';

export interface HaBalancer {
  'id'?: (string);
  'address'?: (string);
  'controlAddress'?: (string);
  'adminAddress'?: (string);
  'startedAtUnixMs'?: (number | string | Long);
}

export interface HaBalancer__Output {
  'id': (string);
  'address': (string);
  'controlAddress': (string);
  'adminAddress': (string);
  'startedAtUnixMs': (number);
}
