// Original file: proto/rebind/v1/control.proto

import type { Long } from '@grpc/proto-loader';

export interface Notice {
  'code'?: (number);
  'message'?: (string);
  'reportSeq'?: (number | string | Long);
}

export interface Notice__Output {
  'code': (number);
  'message': (string);
  'reportSeq': (number);
}
