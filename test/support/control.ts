/** Test helpers for talking to a balancer's control port by hand, as a (possibly hostile) replica would. */
import type * as grpc from '@grpc/grpc-js';
import type { BalancerMessage__Output } from '../../src/generated/rebind/v1/BalancerMessage';
import type { ControlClient } from '../../src/generated/rebind/v1/Control';
import type { ReplicaMessage } from '../../src/generated/rebind/v1/ReplicaMessage';

/** One attachment opened by {@link converse}: what came back, and how (or whether) it ended so far. */
export interface Conversation {
  call: grpc.ClientDuplexStream<ReplicaMessage, BalancerMessage__Output>;
  received: BalancerMessage__Output[];
  readonly error: grpc.ServiceError | null;
  readonly ended: boolean;
}

/**
 * Opens an attachment, sends `messages`, and collects what comes back until
 * the stream ends or `settleMs` passes; then cancels it unless `keepOpen`.
 * `error` and `ended` keep following the stream after it returns.
 */
export async function converse(client: ControlClient, messages: ReplicaMessage[], settleMs = 400, { keepOpen = false } = {}): Promise<Conversation> {
  const call = client.attach();
  const received: BalancerMessage__Output[] = [];
  let error: grpc.ServiceError | null = null;
  let ended = false;
  call.on('data', (m: BalancerMessage__Output) => received.push(m));
  call.on('error', (e: grpc.ServiceError) => {
    error = e;
    ended = true;
  });
  call.on('end', () => (ended = true));
  for (const m of messages) call.write(m);
  const deadline = Date.now() + settleMs;
  while (!ended && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  if (!ended && !keepOpen) call.cancel();
  return {
    call,
    received,
    get error() {
      return error;
    },
    get ended() {
      return ended;
    },
  };
}
