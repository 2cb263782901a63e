// Original file: proto/stock/v1/stock.proto


export interface PortfolioRequest {
  'sessionId'?: (string);
}

export interface PortfolioRequest__Output {
  'sessionId': (string);
}
