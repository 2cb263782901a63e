/**
 * The idempotent-call replay interceptor against a raw HTTP/2 peer that
 * sends response headers (and sometimes a message) and then drops the
 * connection: the window gRPC's own retry cannot cover, because it commits
 * a call once headers arrive.
 */
import * as grpc from '@grpc/grpc-js';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MAX_REPLAYS, idempotentMatcher, idempotentRetryInterceptor } from '../../src/interceptors/idempotent-retry';
import { EchoService, type EchoClient } from '../support/echo';

type Behaviour = 'answer' | 'headers-then-drop' | 'message-then-drop' | 'internal';

/** What the peer does with each request, in order; the last entry repeats. */
let script: Behaviour[] = ['answer'];
let requests: string[] = [];
let server: http2.Http2Server;
let address: string;
const clients: EchoClient[] = [];

const replyCodec = EchoService.service.Unary;
function frame(payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

beforeAll(async () => {
  server = http2.createServer();
  server.on('session', (session) => session.on('error', () => undefined));
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => {
      const body = Buffer.concat(chunks);
      const request = replyCodec.requestDeserialize(body.subarray(5));
      requests.push(request.text);
      const behaviour = script[Math.min(requests.length - 1, script.length - 1)];
      const reply = (text: string) => frame(replyCodec.responseSerialize({ text, servedBy: 'peer', index: 0 }));
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      if (behaviour === 'headers-then-drop') {
        setTimeout(() => stream.session?.destroy(), 20);
        return;
      }
      stream.write(reply(`${request.text}#${requests.length}`));
      if (behaviour === 'message-then-drop') {
        setTimeout(() => stream.session?.destroy(), 20);
        return;
      }
      stream.on('wantTrailers', () =>
        stream.sendTrailers(
          behaviour === 'internal' ? { 'grpc-status': String(grpc.status.INTERNAL), 'grpc-message': 'boom' } : { 'grpc-status': '0' },
        ),
      );
      stream.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

afterEach(() => {
  for (const client of clients.splice(0)) client.close();
  requests = [];
});

function client(idempotent: boolean): EchoClient {
  const c = new EchoService(address, grpc.credentials.createInsecure(), {
    interceptors: [idempotentRetryInterceptor(() => idempotent)],
    'grpc.enable_retries': 0,
  }) as unknown as EchoClient;
  clients.push(c);
  return c;
}

function unary(c: EchoClient, text: string): Promise<{ text?: string; error?: grpc.ServiceError }> {
  return new Promise((resolve) =>
    c.Unary({ text, count: 0, delayMs: 0 }, { deadline: Date.now() + 10_000 }, (error, reply) =>
      resolve(error ? { error } : { text: reply?.text }),
    ),
  );
}

function serverStream(c: EchoClient, text: string): Promise<{ texts: string[]; error?: grpc.ServiceError }> {
  return new Promise((resolve) => {
    const texts: string[] = [];
    const call = c.ServerStream({ text, count: 1, delayMs: 0 }, { deadline: Date.now() + 10_000 });
    call.on('data', (reply: { text: string }) => texts.push(reply.text));
    call.on('error', (error: grpc.ServiceError) => resolve({ texts, error }));
    call.on('end', () => resolve({ texts }));
  });
}

describe('idempotent replay interceptor', () => {
  it('replays a unary call whose peer dropped after sending headers and a message', async () => {
    script = ['message-then-drop', 'answer'];
    const result = await unary(client(true), 'q');
    expect(result.error).toBeUndefined();
    expect(result.text).toBe('q#2'); // the second attempt's answer, not the dropped one
    expect(requests).toEqual(['q', 'q']);
  });

  it('replays a unary call whose peer dropped after headers only', async () => {
    script = ['headers-then-drop', 'headers-then-drop', 'answer'];
    const result = await unary(client(true), 'r');
    expect(result.text).toBe('r#3');
    expect(requests).toHaveLength(3);
  });

  it(`gives up after ${MAX_REPLAYS} replays with UNAVAILABLE`, async () => {
    script = ['headers-then-drop'];
    const result = await unary(client(true), 's');
    expect(result.error?.code).toBe(grpc.status.UNAVAILABLE);
    expect(requests).toHaveLength(1 + MAX_REPLAYS);
  });

  it('does not replay a method that is not idempotent', async () => {
    script = ['message-then-drop', 'answer'];
    const result = await unary(client(false), 't');
    expect(result.error?.code).toBe(grpc.status.UNAVAILABLE);
    expect(requests).toEqual(['t']);
  });

  it('does not replay other failures', async () => {
    script = ['internal', 'answer'];
    const result = await unary(client(true), 'u');
    expect(result.error?.code).toBe(grpc.status.INTERNAL);
    expect(requests).toHaveLength(1);
  });

  it('replays a server-streaming call only while nothing was delivered', async () => {
    script = ['headers-then-drop', 'answer'];
    const before = await serverStream(client(true), 'v');
    expect(before.error).toBeUndefined();
    expect(before.texts).toEqual(['v#2']);
    requests = [];
    script = ['message-then-drop', 'answer'];
    const after = await serverStream(client(true), 'w');
    expect(after.texts).toEqual(['w#1']); // delivered, so the failure stands
    expect(after.error?.code).toBe(grpc.status.UNAVAILABLE);
    expect(requests).toEqual(['w']);
  });

  it('matches services and methods by path', () => {
    const match = idempotentMatcher([{ service: 'a.B' }, { service: 'c.D', method: 'Get' }]);
    expect(match('/a.B/Anything')).toBe(true);
    expect(match('/c.D/Get')).toBe(true);
    expect(match('/c.D/Put')).toBe(false);
    expect(match('/a.Bx/Get')).toBe(false);
  });
});
