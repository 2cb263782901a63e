// Original file: proto/stock/v1/stock.proto


export interface CloseReply {
  'orders'?: (number);
}

export interface CloseReply__Output {
  'orders': (number);
}
