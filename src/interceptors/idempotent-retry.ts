/**
 * Re-sends calls of methods declared idempotent when they fail with
 * UNAVAILABLE after gRPC's own retry gave up on them.
 *
 * gRPC's retry (gRFC A6, grpc-js) commits a call as soon as response
 * headers arrive: a replica that dies between its headers and its trailers
 * (the window is small, but a crash finds it) leaves the call failed with
 * UNAVAILABLE even when the method is idempotent. This interceptor (the
 * retry-interceptor pattern of gRFC L5) replays such a call — unary or
 * server-streaming, only while no response message has reached the
 * application (a unary response is held back until its status, so a unary
 * call stays replayable until it succeeds), within the call's own deadline. Calls of other methods pass
 * through untouched (no wrapper is made for them).
 */
import * as grpc from '@grpc/grpc-js';

/** Replays after UNAVAILABLE beyond gRPC's own retry, per call. */
export const MAX_REPLAYS = 3;

/** Turns "pkg.Service/Method" and "pkg.Service" entries into a path matcher. */
export function idempotentMatcher(entries: readonly { service: string; method?: string }[]): (path: string) => boolean {
  const services = new Set(entries.filter((e) => e.method === undefined).map((e) => e.service));
  const methods = new Set(entries.filter((e) => e.method !== undefined).map((e) => `/${e.service}/${e.method}`));
  return (path) => methods.has(path) || services.has(path.slice(1, path.lastIndexOf('/')));
}

type CallInterface = ReturnType<grpc.NextCall>;

export function idempotentRetryInterceptor(isIdempotent: (path: string) => boolean): grpc.Interceptor {
  return (options, nextCall) => {
    const method = options.method_definition;
    if (method.requestStream || !isIdempotent(method.path)) return new grpc.InterceptingCall(nextCall(options));
    return new grpc.InterceptingCall(new ReplayingCall(() => nextCall(options), !method.responseStream));
  };
}

/**
 * One application call carried by up to 1 + MAX_REPLAYS attempts. The
 * application sees a single stream of events: headers once, messages from
 * the attempt that delivers them, the status of the last attempt.
 */
class ReplayingCall implements CallInterface {
  private current: CallInterface;
  private metadata: grpc.Metadata | undefined;
  private listener: Partial<grpc.InterceptingListener> = {};
  private request: { message: unknown } | undefined;
  private halfClosed = false;
  private readRequested = false;
  private cancelled = false;
  private delivered = false;
  private headersSent = false;
  private replays = 0;

  /** The response of a unary attempt, held until its status says it succeeded. */
  private held: { message: unknown } | undefined;

  /**
   * @param unary a unary call's response reaches the application only with
   *   an OK status, so it is held back and the call stays replayable until
   *   then; a server-streaming call stops being replayable at its first
   *   message.
   */
  constructor(
    private readonly makeAttempt: () => CallInterface,
    private readonly unary: boolean,
  ) {
    this.current = makeAttempt();
  }

  start(metadata: grpc.Metadata, listener?: Partial<grpc.InterceptingListener>): void {
    this.metadata = metadata.clone();
    this.listener = listener ?? {};
    this.current.start(metadata, this.relay(this.current));
  }

  sendMessageWithContext(context: Parameters<CallInterface['sendMessageWithContext']>[0], message: unknown): void {
    this.request = { message };
    this.current.sendMessageWithContext(context, message);
  }

  sendMessage(message: unknown): void {
    this.request = { message };
    this.current.sendMessage(message);
  }

  halfClose(): void {
    this.halfClosed = true;
    this.current.halfClose();
  }

  startRead(): void {
    this.readRequested = true;
    this.current.startRead();
  }

  cancelWithStatus(status: grpc.status, details: string): void {
    this.cancelled = true;
    this.current.cancelWithStatus(status, details);
  }

  getPeer(): string {
    return this.current.getPeer();
  }

  getAuthContext(): ReturnType<CallInterface['getAuthContext']> {
    return this.current.getAuthContext();
  }

  private relay(attempt: CallInterface): grpc.InterceptingListener {
    return {
      onReceiveMetadata: (metadata) => {
        if (attempt !== this.current || this.headersSent) return;
        this.headersSent = true;
        this.listener.onReceiveMetadata?.(metadata);
      },
      onReceiveMessage: (message) => {
        if (attempt !== this.current) return;
        if (this.unary) {
          this.held = { message };
          return;
        }
        this.delivered = true;
        this.listener.onReceiveMessage?.(message);
      },
      onReceiveStatus: (status) => {
        if (attempt !== this.current) return;
        if (this.replayable(status)) {
          this.replay();
          return;
        }
        if (this.held !== undefined) this.listener.onReceiveMessage?.(this.held.message);
        this.held = undefined;
        this.listener.onReceiveStatus?.(status);
      },
    };
  }

  private replayable(status: grpc.StatusObject): boolean {
    return (
      status.code === grpc.status.UNAVAILABLE &&
      !this.delivered &&
      !this.cancelled &&
      this.halfClosed &&
      this.request !== undefined &&
      this.metadata !== undefined &&
      this.replays < MAX_REPLAYS
    );
  }

  private replay(): void {
    this.replays++;
    this.held = undefined;
    const attempt = this.makeAttempt();
    this.current = attempt;
    attempt.start(this.metadata!.clone(), this.relay(attempt));
    attempt.sendMessage(this.request!.message);
    attempt.halfClose();
    if (this.readRequested) attempt.startRead();
  }
}
