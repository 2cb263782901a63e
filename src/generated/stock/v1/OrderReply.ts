// Original file: proto/stock/v1/stock.proto

import type { Side as _stock_v1_Side, Side__Output as _stock_v1_Side__Output } from '../../stock/v1/Side';

export interface OrderReply {
  'orderId'?: (string);
  'symbol'?: (string);
  'side'?: (_stock_v1_Side);
  'quantity'?: (number);
  'fillPrice'?: (number | string);
  'cashAfter'?: (number | string);
}

export interface OrderReply__Output {
  'orderId': (string);
  'symbol': (string);
  'side': (_stock_v1_Side__Output);
  'quantity': (number);
  'fillPrice': (number);
  'cashAfter': (number);
}
