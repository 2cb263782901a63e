// Original file: proto/stock/v1/stock.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { CloseReply as _stock_v1_CloseReply, CloseReply__Output as _stock_v1_CloseReply__Output } from '../../stock/v1/CloseReply';
import type { CloseRequest as _stock_v1_CloseRequest, CloseRequest__Output as _stock_v1_CloseRequest__Output } from '../../stock/v1/CloseRequest';
import type { OrderReply as _stock_v1_OrderReply, OrderReply__Output as _stock_v1_OrderReply__Output } from '../../stock/v1/OrderReply';
import type { OrderRequest as _stock_v1_OrderRequest, OrderRequest__Output as _stock_v1_OrderRequest__Output } from '../../stock/v1/OrderRequest';
import type { PortfolioReply as _stock_v1_PortfolioReply, PortfolioReply__Output as _stock_v1_PortfolioReply__Output } from '../../stock/v1/PortfolioReply';
import type { PortfolioRequest as _stock_v1_PortfolioRequest, PortfolioRequest__Output as _stock_v1_PortfolioRequest__Output } from '../../stock/v1/PortfolioRequest';
import type { PriceFeedRequest as _stock_v1_PriceFeedRequest, PriceFeedRequest__Output as _stock_v1_PriceFeedRequest__Output } from '../../stock/v1/PriceFeedRequest';
import type { PriceTick as _stock_v1_PriceTick, PriceTick__Output as _stock_v1_PriceTick__Output } from '../../stock/v1/PriceTick';
import type { QuoteReply as _stock_v1_QuoteReply, QuoteReply__Output as _stock_v1_QuoteReply__Output } from '../../stock/v1/QuoteReply';
import type { QuoteRequest as _stock_v1_QuoteRequest, QuoteRequest__Output as _stock_v1_QuoteRequest__Output } from '../../stock/v1/QuoteRequest';

export interface TradingSessionClient extends grpc.Client {
  CloseSession(argument: _stock_v1_CloseRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_stock_v1_CloseReply__Output>): grpc.ClientUnaryCall;
  CloseSession(argument: _stock_v1_CloseRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_stock_v1_CloseReply__Output>): grpc.ClientUnaryCall;
  CloseSession(argument: _stock_v1_CloseRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_stock_v1_CloseReply__Output>): grpc.ClientUnaryCall;
  CloseSession(argument: _stock_v1_CloseRequest, callback: grpc.requestCallback<_stock_v1_CloseReply__Output>): grpc.ClientUnaryCall;
  closeSession(argument: _stock_v1_CloseRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_stock_v1_CloseReply__Output>): grpc.ClientUnaryCall;
  closeSession(argument: _stock_v1_CloseRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_stock_v1_CloseReply__Output>): grpc.ClientUnaryCall;
  closeSession(argument: _stock_v1_CloseRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_stock_v1_CloseReply__Output>): grpc.ClientUnaryCall;
  closeSession(argument: _stock_v1_CloseRequest, callback: grpc.requestCallback<_stock_v1_CloseReply__Output>): grpc.ClientUnaryCall;
  
  PlaceOrder(argument: _stock_v1_OrderRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_stock_v1_OrderReply__Output>): grpc.ClientUnaryCall;
  PlaceOrder(argument: _stock_v1_OrderRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_stock_v1_OrderReply__Output>): grpc.ClientUnaryCall;
  PlaceOrder(argument: _stock_v1_OrderRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_stock_v1_OrderReply__Output>): grpc.ClientUnaryCall;
  PlaceOrder(argument: _stock_v1_OrderRequest, callback: grpc.requestCallback<_stock_v1_OrderReply__Output>): grpc.ClientUnaryCall;
  placeOrder(argument: _stock_v1_OrderRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_stock_v1_OrderReply__Output>): grpc.ClientUnaryCall;
  placeOrder(argument: _stock_v1_OrderRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_stock_v1_OrderReply__Output>): grpc.ClientUnaryCall;
  placeOrder(argument: _stock_v1_OrderRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_stock_v1_OrderReply__Output>): grpc.ClientUnaryCall;
  placeOrder(argument: _stock_v1_OrderRequest, callback: grpc.requestCallback<_stock_v1_OrderReply__Output>): grpc.ClientUnaryCall;
  
  Portfolio(argument: _stock_v1_PortfolioRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_stock_v1_PortfolioReply__Output>): grpc.ClientUnaryCall;
  Portfolio(argument: _stock_v1_PortfolioRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_stock_v1_PortfolioReply__Output>): grpc.ClientUnaryCall;
  Portfolio(argument: _stock_v1_PortfolioRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_stock_v1_PortfolioReply__Output>): grpc.ClientUnaryCall;
  Portfolio(argument: _stock_v1_PortfolioRequest, callback: grpc.requestCallback<_stock_v1_PortfolioReply__Output>): grpc.ClientUnaryCall;
  portfolio(argument: _stock_v1_PortfolioRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_stock_v1_PortfolioReply__Output>): grpc.ClientUnaryCall;
  portfolio(argument: _stock_v1_PortfolioRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_stock_v1_PortfolioReply__Output>): grpc.ClientUnaryCall;
  portfolio(argument: _stock_v1_PortfolioRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_stock_v1_PortfolioReply__Output>): grpc.ClientUnaryCall;
  portfolio(argument: _stock_v1_PortfolioRequest, callback: grpc.requestCallback<_stock_v1_PortfolioReply__Output>): grpc.ClientUnaryCall;
  
  PriceFeed(argument: _stock_v1_PriceFeedRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_stock_v1_PriceTick__Output>;
  PriceFeed(argument: _stock_v1_PriceFeedRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_stock_v1_PriceTick__Output>;
  priceFeed(argument: _stock_v1_PriceFeedRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_stock_v1_PriceTick__Output>;
  priceFeed(argument: _stock_v1_PriceFeedRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_stock_v1_PriceTick__Output>;
  
  Quote(argument: _stock_v1_QuoteRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_stock_v1_QuoteReply__Output>): grpc.ClientUnaryCall;
  Quote(argument: _stock_v1_QuoteRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_stock_v1_QuoteReply__Output>): grpc.ClientUnaryCall;
  Quote(argument: _stock_v1_QuoteRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_stock_v1_QuoteReply__Output>): grpc.ClientUnaryCall;
  Quote(argument: _stock_v1_QuoteRequest, callback: grpc.requestCallback<_stock_v1_QuoteReply__Output>): grpc.ClientUnaryCall;
  quote(argument: _stock_v1_QuoteRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_stock_v1_QuoteReply__Output>): grpc.ClientUnaryCall;
  quote(argument: _stock_v1_QuoteRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_stock_v1_QuoteReply__Output>): grpc.ClientUnaryCall;
  quote(argument: _stock_v1_QuoteRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_stock_v1_QuoteReply__Output>): grpc.ClientUnaryCall;
  quote(argument: _stock_v1_QuoteRequest, callback: grpc.requestCallback<_stock_v1_QuoteReply__Output>): grpc.ClientUnaryCall;
  
}

export interface TradingSessionHandlers extends grpc.UntypedServiceImplementation {
  CloseSession: grpc.handleUnaryCall<_stock_v1_CloseRequest__Output, _stock_v1_CloseReply>;
  
  PlaceOrder: grpc.handleUnaryCall<_stock_v1_OrderRequest__Output, _stock_v1_OrderReply>;
  
  Portfolio: grpc.handleUnaryCall<_stock_v1_PortfolioRequest__Output, _stock_v1_PortfolioReply>;
  
  PriceFeed: grpc.handleServerStreamingCall<_stock_v1_PriceFeedRequest__Output, _stock_v1_PriceTick>;
  
  Quote: grpc.handleUnaryCall<_stock_v1_QuoteRequest__Output, _stock_v1_QuoteReply>;
  
}

export interface TradingSessionDefinition extends grpc.ServiceDefinition {
  CloseSession: MethodDefinition<_stock_v1_CloseRequest, _stock_v1_CloseReply, _stock_v1_CloseRequest__Output, _stock_v1_CloseReply__Output>
  PlaceOrder: MethodDefinition<_stock_v1_OrderRequest, _stock_v1_OrderReply, _stock_v1_OrderRequest__Output, _stock_v1_OrderReply__Output>
  Portfolio: MethodDefinition<_stock_v1_PortfolioRequest, _stock_v1_PortfolioReply, _stock_v1_PortfolioRequest__Output, _stock_v1_PortfolioReply__Output>
  PriceFeed: MethodDefinition<_stock_v1_PriceFeedRequest, _stock_v1_PriceTick, _stock_v1_PriceFeedRequest__Output, _stock_v1_PriceTick__Output>
  Quote: MethodDefinition<_stock_v1_QuoteRequest, _stock_v1_QuoteReply, _stock_v1_QuoteRequest__Output, _stock_v1_QuoteReply__Output>
}
