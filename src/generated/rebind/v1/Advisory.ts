// Original file: proto/rebind/v1/control.proto

import type { Move as _rebind_v1_Move, Move__Output as _rebind_v1_Move__Output } from '../../rebind/v1/Move';
import type { Long } from '@grpc/proto-loader';

export interface Advisory {
  'seq'?: (number | string | Long);
  'moves'?: (_rebind_v1_Move)[];
  'recallAll'?: (boolean);
  'expireMs'?: (number);
  'offerBinding'?: (string);
  'offerVouch'?: (string);
  'offerExpireMs'?: (number);
  'keyChain'?: (string);
}

export interface Advisory__Output {
  'seq': (number);
  'moves': (_rebind_v1_Move__Output)[];
  'recallAll': (boolean);
  'expireMs': (number);
  'offerBinding': (string);
  'offerVouch': (string);
  'offerExpireMs': (number);
  'keyChain': (string);
}
