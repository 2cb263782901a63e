// Original file: proto/stock/v1/stock.proto


export interface SessionHandle {
  'sessionId'?: (string);
  'affinity'?: (string);
  'replica'?: (string);
}

export interface SessionHandle__Output {
  'sessionId': (string);
  'affinity': (string);
  'replica': (string);
}
