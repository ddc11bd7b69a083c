import net from 'node:net';

/**
 * A TCP proxy on loopback that can cut the network: while paused, bytes on open connections
 * are silently discarded (a black hole, as a dead Wi-Fi link looks to TCP) and new connections
 * are refused. Resuming drops the stale connections, as a real outage ends with a new one.
 */
export class PausableProxy {
  private readonly server = net.createServer((client) => this.accept(client));
  private readonly pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  private paused = false;
  /** Connections refused while paused (the agent kept trying). */
  refused = 0;

  private constructor(private readonly targetPort: number) {}

  static async start(targetPort: number): Promise<PausableProxy> {
    const proxy = new PausableProxy(targetPort);
    await new Promise<void>((r) => proxy.server.listen(0, '127.0.0.1', () => r()));
    return proxy;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${(this.server.address() as net.AddressInfo).port}`;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    for (const pair of this.pairs) {
      pair.client.destroy();
      pair.upstream.destroy();
    }
    this.pairs.clear();
  }

  async close(): Promise<void> {
    this.resume();
    await new Promise((r) => this.server.close(r));
  }

  private accept(client: net.Socket): void {
    if (this.paused) {
      this.refused++;
      client.destroy();
      return;
    }
    const upstream = net.connect(this.targetPort, '127.0.0.1');
    const pair = { client, upstream };
    this.pairs.add(pair);
    client.on('data', (d) => {
      if (!this.paused) upstream.write(d);
    });
    upstream.on('data', (d) => {
      if (!this.paused) client.write(d);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
    };
    for (const s of [client, upstream]) {
      s.on('error', end);
      s.on('close', end);
    }
  }
}
