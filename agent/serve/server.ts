import { createHash, timingSafeEqual } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { FleetError } from '../../shared/errors/index.js';
import type { Logger } from '../../shared/logger.js';
import { type InferRequest, inferRequestSchema, type ModelMetadata } from '../../shared/protocol/index.js';
import type { Executor } from './executor.js';
import { parseJson, readBody, sendError, sendJson, splitBody } from './http-io.js';
import { listen } from './listen.js';
import type { ModelRegistry, Release } from './registry.js';
import { decodeInputs, encodeOutputs, tensorMetadata } from './tensors.js';
import type { TrafficRecorder } from './traffic.js';

export interface InferenceServerOptions {
  registry: ModelRegistry;
  executor: Executor;
  traffic: TrafficRecorder;
  logger: Logger;
  /** Address to listen on; anything but loopback needs `token`. Default '127.0.0.1'. */
  host?: string;
  /** TCP port; 0 = a free one; null = no TCP listener (socket only). Default 8000. */
  port?: number | null;
  /** Unix socket path to listen on as well; '' = none. Default ''. */
  socketPath?: string;
  /** Bearer token every request must carry; '' = none (loopback and socket only). Default ''. */
  token?: string;
  /** Largest request body, bytes. Default 64 MiB. */
  maxBodyBytes?: number;
  /** Name and version in `GET /v2`. */
  serverVersion?: string;
}

export const INFERENCE_SERVER_DEFAULTS = {
  host: '127.0.0.1',
  port: 8000 as number | null,
  socketPath: '',
  token: '',
  maxBodyBytes: 64 * 1024 * 1024,
  serverVersion: '0.1.0',
};

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host) || host.startsWith('127.');
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * The agent's local inference service: Open Inference Protocol v2 over HTTP/REST (the API of
 * KServe and Triton) with Triton's binary tensor extension, on plain node:http (less overhead per
 * request than a framework; the routes are few and fixed).
 */
export class InferenceServer {
  private readonly o: typeof INFERENCE_SERVER_DEFAULTS & InferenceServerOptions;
  private readonly servers: Server[] = [];
  private readonly tokenDigest: Buffer | null;
  url: string | null = null;

  constructor(options: InferenceServerOptions) {
    this.o = { ...INFERENCE_SERVER_DEFAULTS, ...options };
    if (!isLoopback(this.o.host) && this.o.port !== null && !this.o.token) {
      throw new FleetError(
        'CONFIG_INVALID',
        `the inference service listens on ${this.o.host}, beyond this device: set a token (--serve-token or serveToken)`,
      );
    }
    this.tokenDigest = this.o.token ? digest(this.o.token) : null;
  }

  /** Listens on TCP and/or the socket; on a failure, closes what did start and throws it coded. */
  async start(): Promise<void> {
    try {
      await this.listenAll();
    } catch (error) {
      await this.stop();
      this.url = null;
      throw error;
    }
  }

  private async listenAll(): Promise<void> {
    const handler = (req: IncomingMessage, res: ServerResponse) => this.handle(req, res);
    if (this.o.port !== null) {
      const server = createServer({ keepAliveTimeout: 65_000 }, handler);
      await listen(server, { host: this.o.host, port: this.o.port });
      const { port } = server.address() as AddressInfo;
      const host = this.o.host.includes(':') ? `[${this.o.host}]` : this.o.host;
      this.url = `http://${host}:${port}`;
      this.servers.push(server);
    }
    if (this.o.socketPath) {
      await rm(this.o.socketPath, { force: true });
      const server = createServer({ keepAliveTimeout: 65_000 }, handler);
      await listen(server, { path: this.o.socketPath });
      this.servers.push(server);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((resolve) => {
            s.close(() => resolve());
            s.closeIdleConnections();
          }),
      ),
    );
    this.servers.length = 0;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const arrival = performance.now();
    try {
      if (this.tokenDigest && !this.authorized(req)) {
        throw new FleetError('UNAUTHORIZED', 'missing or wrong bearer token');
      }
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const parts = (q < 0 ? url : url.slice(0, q)).split('/');
      if (parts[1] !== 'v2') throw notFound(url);
      if (parts[2] === 'models' && parts.length >= 4) {
        this.model(req, res, parts, arrival);
        return;
      }
      this.server(req, res, parts.slice(2).join('/'));
    } catch (error) {
      sendError(res, error);
    }
  }

  private authorized(req: IncomingMessage): boolean {
    const header = req.headers.authorization ?? '';
    if (!header.startsWith('Bearer ')) return false;
    return timingSafeEqual(digest(header.slice(7)), this.tokenDigest!);
  }

  /** GET /v2, /v2/health/live, /v2/health/ready. */
  private server(req: IncomingMessage, res: ServerResponse, rest: string): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') throw methodNotAllowed(req);
    if (rest === '') {
      sendJson(res, 200, {
        name: 'fleetml',
        version: this.o.serverVersion,
        extensions: ['binary_tensor_data'],
      });
    } else if (rest === 'health/live') {
      sendJson(res, 200, { live: true });
    } else if (rest === 'health/ready') {
      const ready = !this.o.registry.isLoading();
      sendJson(res, ready ? 200 : 400, { ready });
    } else {
      throw notFound(req.url ?? '');
    }
  }

  /** /v2/models/{name}[/versions/{v}][/ready | /infer]. */
  private model(req: IncomingMessage, res: ServerResponse, parts: string[], arrival: number): void {
    const name = decodeURIComponent(parts[3]);
    let i = 4;
    let version: string | null = null;
    if (parts[i] === 'versions') {
      if (parts[i + 1] === undefined || parts[i + 1] === '') throw notFound(req.url ?? '');
      version = decodeURIComponent(parts[i + 1]);
      i += 2;
    }
    const action = parts.slice(i).join('/');
    if (action === 'infer') {
      if (req.method !== 'POST') throw methodNotAllowed(req);
      void this.infer(req, res, name, version, arrival);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') throw methodNotAllowed(req);
    const release = this.o.registry.get(name);
    if (action === 'ready') {
      const ready = release !== undefined && (version === null || version === release.version);
      if (!ready && !release) throw unknownModel(name, version);
      sendJson(res, ready ? 200 : 400, { name, ready });
      return;
    }
    if (action !== '') throw notFound(req.url ?? '');
    if (!release || (version !== null && version !== release.version)) throw unknownModel(name, version);
    sendJson(res, 200, metadata(release));
  }

  private async infer(
    req: IncomingMessage,
    res: ServerResponse,
    name: string,
    version: string | null,
    arrival: number,
  ): Promise<void> {
    let release: Release | undefined;
    try {
      const body = await readBody(req, this.o.maxBodyBytes);
      const { json, binary } = splitBody(req, body);
      const parsed = inferRequestSchema.safeParse(parseJson(json));
      release = this.o.registry.acquire(name);
      if (!release || (version !== null && version !== release.version)) throw unknownModel(name, version);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new FleetError(
          'INPUT_INVALID',
          `inference request: ${issue.path.join('.') || 'body'}: ${issue.message}`,
        );
      }
      await this.run(res, release, parsed.data, binary, arrival);
    } catch (error) {
      if (release) this.o.traffic.error(release.name, release.version, release.modelId);
      sendError(res, error);
    } finally {
      if (release) this.o.registry.done(release);
    }
  }

  private async run(
    res: ServerResponse,
    release: Release,
    request: InferRequest,
    binary: Buffer | null,
    arrival: number,
  ): Promise<void> {
    const inputs = decodeInputs(request, release.inputs, binary);
    const { results, startedAt, computeMs } = await this.o.executor.run(release, inputs);
    const { outputs, binary: data } = encodeOutputs(results, release.outputs, request);
    const header = JSON.stringify({
      model_name: release.name,
      model_version: release.version,
      ...(request.id !== undefined ? { id: request.id } : {}),
      outputs,
    });
    if (data.length === 0) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(header) });
      res.end(header);
    } else {
      const head = Buffer.from(header);
      let length = head.length;
      for (const d of data) length += d.length;
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'inference-header-content-length': head.length,
        'content-length': length,
      });
      // One segment for header, JSON and tensors where the socket allows (no Nagle to lean on).
      res.cork();
      res.write(head);
      for (let j = 0; j < data.length - 1; j++) res.write(data[j]);
      res.end(data[data.length - 1]);
      res.uncork();
    }
    const end = performance.now();
    this.o.traffic.ok(release.name, release.version, release.modelId, {
      queueMs: startedAt - arrival,
      computeMs,
      totalMs: end - arrival,
    });
  }
}

function metadata(r: Release): ModelMetadata {
  return {
    name: r.name,
    versions: [r.version],
    platform: 'onnxruntime_onnx',
    inputs: r.inputs.map(tensorMetadata),
    outputs: r.outputs.map(tensorMetadata),
  };
}

function notFound(path: string): FleetError {
  return new FleetError('NOT_FOUND', `no such endpoint: ${path.slice(0, 200)}`);
}

function methodNotAllowed(req: IncomingMessage): FleetError {
  return new FleetError('INPUT_INVALID', `${req.method} is not allowed on ${(req.url ?? '').slice(0, 200)}`);
}

function unknownModel(name: string, version: string | null): FleetError {
  return new FleetError(
    'NOT_FOUND',
    version === null
      ? `unknown model '${name.slice(0, 200)}'`
      : `model '${name.slice(0, 200)}' has no served version '${version.slice(0, 64)}'`,
  );
}
