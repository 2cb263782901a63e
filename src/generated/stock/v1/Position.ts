// Original file: proto/stock/v1/stock.proto


export interface Position {
  'symbol'?: (string);
  'quantity'?: (number);
  'averageCost'?: (number | string);
}

export interface Position__Output {
  'symbol': (string);
  'quantity': (number);
  'averageCost': (number);
}
