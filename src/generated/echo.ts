import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { EchoClient as _rebind_test_EchoClient, EchoDefinition as _rebind_test_EchoDefinition } from './rebind/test/Echo';
import type { EchoReply as _rebind_test_EchoReply, EchoReply__Output as _rebind_test_EchoReply__Output } from './rebind/test/EchoReply';
import type { EchoRequest as _rebind_test_EchoRequest, EchoRequest__Output as _rebind_test_EchoRequest__Output } from './rebind/test/EchoRequest';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  rebind: {
    test: {
      Echo: SubtypeConstructor<typeof grpc.Client, _rebind_test_EchoClient> & { service: _rebind_test_EchoDefinition }
      EchoReply: MessageTypeDefinition<_rebind_test_EchoReply, _rebind_test_EchoReply__Output>
      EchoRequest: MessageTypeDefinition<_rebind_test_EchoRequest, _rebind_test_EchoRequest__Output>
    }
  }
}

