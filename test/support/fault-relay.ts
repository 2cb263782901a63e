/**
 * A TCP relay between the balancer and a replica, for fault tests: the
 * replica advertises the relay's address, and the test can make the replica
 * look hung or crashed from the network's point of view without touching
 * its process.
 */
import * as net from 'node:net';

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
}

export class FaultRelay {
  /** host:port to advertise instead of the replica's own address. */
  address = '';
  private server: net.Server | null = null;
  private readonly pairs = new Set<Pair>();
  private frozen = false;
  /** Sees every byte relayed toward the replica (the balancer's HTTP/2 frames), in order, per connection. */
  onToReplica: ((chunk: Buffer, connection: net.Socket) => void) | null = null;

  private constructor(private readonly target: { host: string; port: number }) {}

  /** Starts a relay on 127.0.0.1:0 to `target` ("host:port"). */
  static async start(target: string): Promise<FaultRelay> {
    const at = target.lastIndexOf(':');
    const relay = new FaultRelay({ host: target.slice(0, at), port: Number(target.slice(at + 1)) });
    const server = net.createServer((client) => relay.accept(client));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    relay.server = server;
    relay.address = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    return relay;
  }

  /** Connections currently relayed. */
  get connections(): number {
    return this.pairs.size;
  }

  private accept(client: net.Socket): void {
    const upstream = net.connect(this.target.port, this.target.host);
    const pair = { client, upstream };
    this.pairs.add(pair);
    const forget = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', forget);
    upstream.on('error', forget);
    client.on('close', forget);
    upstream.on('close', forget);
    // Bytes are forwarded by hand (not pipe) so that freeze() can drop them
    // on the floor while both sockets stay open, like a stopped process's
    // kernel would keep them.
    client.on('data', (chunk) => {
      this.onToReplica?.(chunk, client);
      if (!this.frozen) upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!this.frozen) client.write(chunk);
    });
  }

  /**
   * A hung replica: from now on no byte goes either way, on open and new
   * connections alike; sockets stay open and new connections are accepted
   * (a stopped process's kernel still completes TCP handshakes).
   */
  freeze(): void {
    this.frozen = true;
  }

  /** A crash as the network sees it: every relayed connection is reset at once. */
  cut(): void {
    for (const pair of this.pairs) {
      pair.client.resetAndDestroy();
      pair.upstream.resetAndDestroy();
    }
    this.pairs.clear();
  }

  async close(): Promise<void> {
    this.cut();
    const server = this.server;
    this.server = null;
    if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
