// Original file: proto/stock/v1/stock.proto


export interface CloseRequest {
  'sessionId'?: (string);
}

export interface CloseRequest__Output {
  'sessionId': (string);
}
