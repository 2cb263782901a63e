// Original file: proto/stock/v1/stock.proto

import type { Long } from '@grpc/proto-loader';

export interface PriceTick {
  'symbol'?: (string);
  'price'?: (number | string);
  'atUnixMs'?: (number | string | Long);
}

export interface PriceTick__Output {
  'symbol': (string);
  'price': (number);
  'atUnixMs': (number);
}
