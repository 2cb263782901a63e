// Original file: proto/stock/v1/stock.proto


export interface CreateSessionRequest {
  'trader'?: (string);
}

export interface CreateSessionRequest__Output {
  'trader': (string);
}
