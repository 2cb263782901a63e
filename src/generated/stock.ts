import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { CloseReply as _stock_v1_CloseReply, CloseReply__Output as _stock_v1_CloseReply__Output } from './stock/v1/CloseReply';
import type { CloseRequest as _stock_v1_CloseRequest, CloseRequest__Output as _stock_v1_CloseRequest__Output } from './stock/v1/CloseRequest';
import type { CreateSessionRequest as _stock_v1_CreateSessionRequest, CreateSessionRequest__Output as _stock_v1_CreateSessionRequest__Output } from './stock/v1/CreateSessionRequest';
import type { OrderReply as _stock_v1_OrderReply, OrderReply__Output as _stock_v1_OrderReply__Output } from './stock/v1/OrderReply';
import type { OrderRequest as _stock_v1_OrderRequest, OrderRequest__Output as _stock_v1_OrderRequest__Output } from './stock/v1/OrderRequest';
import type { PortfolioReply as _stock_v1_PortfolioReply, PortfolioReply__Output as _stock_v1_PortfolioReply__Output } from './stock/v1/PortfolioReply';
import type { PortfolioRequest as _stock_v1_PortfolioRequest, PortfolioRequest__Output as _stock_v1_PortfolioRequest__Output } from './stock/v1/PortfolioRequest';
import type { Position as _stock_v1_Position, Position__Output as _stock_v1_Position__Output } from './stock/v1/Position';
import type { PriceFeedRequest as _stock_v1_PriceFeedRequest, PriceFeedRequest__Output as _stock_v1_PriceFeedRequest__Output } from './stock/v1/PriceFeedRequest';
import type { PriceTick as _stock_v1_PriceTick, PriceTick__Output as _stock_v1_PriceTick__Output } from './stock/v1/PriceTick';
import type { QuoteReply as _stock_v1_QuoteReply, QuoteReply__Output as _stock_v1_QuoteReply__Output } from './stock/v1/QuoteReply';
import type { QuoteRequest as _stock_v1_QuoteRequest, QuoteRequest__Output as _stock_v1_QuoteRequest__Output } from './stock/v1/QuoteRequest';
import type { SessionFactoryClient as _stock_v1_SessionFactoryClient, SessionFactoryDefinition as _stock_v1_SessionFactoryDefinition } from './stock/v1/SessionFactory';
import type { SessionHandle as _stock_v1_SessionHandle, SessionHandle__Output as _stock_v1_SessionHandle__Output } from './stock/v1/SessionHandle';
import type { TradingSessionClient as _stock_v1_TradingSessionClient, TradingSessionDefinition as _stock_v1_TradingSessionDefinition } from './stock/v1/TradingSession';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  stock: {
    v1: {
      CloseReply: MessageTypeDefinition<_stock_v1_CloseReply, _stock_v1_CloseReply__Output>
      CloseRequest: MessageTypeDefinition<_stock_v1_CloseRequest, _stock_v1_CloseRequest__Output>
      CreateSessionRequest: MessageTypeDefinition<_stock_v1_CreateSessionRequest, _stock_v1_CreateSessionRequest__Output>
      OrderReply: MessageTypeDefinition<_stock_v1_OrderReply, _stock_v1_OrderReply__Output>
      OrderRequest: MessageTypeDefinition<_stock_v1_OrderRequest, _stock_v1_OrderRequest__Output>
      PortfolioReply: MessageTypeDefinition<_stock_v1_PortfolioReply, _stock_v1_PortfolioReply__Output>
      PortfolioRequest: MessageTypeDefinition<_stock_v1_PortfolioRequest, _stock_v1_PortfolioRequest__Output>
      Position: MessageTypeDefinition<_stock_v1_Position, _stock_v1_Position__Output>
      PriceFeedRequest: MessageTypeDefinition<_stock_v1_PriceFeedRequest, _stock_v1_PriceFeedRequest__Output>
      PriceTick: MessageTypeDefinition<_stock_v1_PriceTick, _stock_v1_PriceTick__Output>
      QuoteReply: MessageTypeDefinition<_stock_v1_QuoteReply, _stock_v1_QuoteReply__Output>
      QuoteRequest: MessageTypeDefinition<_stock_v1_QuoteRequest, _stock_v1_QuoteRequest__Output>
      SessionFactory: SubtypeConstructor<typeof grpc.Client, _stock_v1_SessionFactoryClient> & { service: _stock_v1_SessionFactoryDefinition }
      SessionHandle: MessageTypeDefinition<_stock_v1_SessionHandle, _stock_v1_SessionHandle__Output>
      Side: EnumTypeDefinition
      TradingSession: SubtypeConstructor<typeof grpc.Client, _stock_v1_TradingSessionClient> & { service: _stock_v1_TradingSessionDefinition }
    }
  }
}

