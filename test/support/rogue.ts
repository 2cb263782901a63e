/** A compromised replica, for security tests. */
import * as grpc from '@grpc/grpc-js';
import { FORWARD_STATUS } from '../../src/common/wire';

/**
 * Puts an interceptor in front of every other on `server` (at the network
 * edge, as a compromised process would: rebind's own interceptor strips the
 * forwards an application makes) that answers each call with a forward
 * status carrying the trailers `trailers()` returns; values that are not
 * valid metadata are skipped.
 */
export function answerWithForwards(server: grpc.Server, trailers: () => Record<string, string>, details = 'go there'): void {
  (server as unknown as { interceptors: grpc.ServerInterceptor[] }).interceptors.unshift((_method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: () => {
            const metadata = new grpc.Metadata();
            for (const [key, value] of Object.entries(trailers())) {
              try {
                metadata.set(key, value);
              } catch {
                // not a valid metadata value: skip it
              }
            }
            call.sendStatus({ code: FORWARD_STATUS, details, metadata });
          },
        }),
    }),
  );
}
