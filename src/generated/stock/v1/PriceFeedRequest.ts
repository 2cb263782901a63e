// Original file: proto/stock/v1/stock.proto


export interface PriceFeedRequest {
  'sessionId'?: (string);
  'symbols'?: (string)[];
  'ticks'?: (number);
  'intervalMs'?: (number);
}

export interface PriceFeedRequest__Output {
  'sessionId': (string);
  'symbols': (string)[];
  'ticks': (number);
  'intervalMs': (number);
}
