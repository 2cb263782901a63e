// Original file: proto/stock/v1/stock.proto

import type { Position as _stock_v1_Position, Position__Output as _stock_v1_Position__Output } from '../../stock/v1/Position';

export interface PortfolioReply {
  'positions'?: (_stock_v1_Position)[];
  'cash'?: (number | string);
  'orders'?: (number);
}

export interface PortfolioReply__Output {
  'positions': (_stock_v1_Position__Output)[];
  'cash': (number);
  'orders': (number);
}
