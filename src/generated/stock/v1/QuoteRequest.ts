// Original file: proto/stock/v1/stock.proto


export interface QuoteRequest {
  'sessionId'?: (string);
  'symbol'?: (string);
}

export interface QuoteRequest__Output {
  'sessionId': (string);
  'symbol': (string);
}
