import type { IncomingMessage, ServerResponse } from 'node:http';
import { FleetError, httpStatusOf, toFleetError } from '../../shared/errors/index.js';

/** HTTP status of an error the inference service returns ({"error": "..."} per the protocol). */
export function statusOf(error: FleetError): number {
  return httpStatusOf(error.code);
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** The protocol's error body, plus the fleetml error code for programs that branch on it. */
export function sendError(res: ServerResponse, error: unknown): FleetError {
  const e = toFleetError(error, 'INTERNAL');
  if (res.headersSent) {
    res.destroy();
    return e;
  }
  if (e.code === 'SERVE_BODY_TOO_LARGE') res.setHeader('connection', 'close');
  sendJson(res, statusOf(e), { error: e.message, code: e.code });
  return e;
}

/** Reads the body up to `limit` bytes; SERVE_BODY_TOO_LARGE beyond (announced or streamed). */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const announced = Number(req.headers['content-length'] ?? Number.NaN);
  if (announced > limit) {
    return Promise.reject(
      new FleetError(
        'SERVE_BODY_TOO_LARGE',
        `request body of ${announced} bytes exceeds the limit of ${limit}`,
      ),
    );
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off('data', onData);
        req.resume();
        reject(new FleetError('SERVE_BODY_TOO_LARGE', `request body exceeds the limit of ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)));
    req.once('error', reject);
  });
}

/** Splits a body into the JSON header and the binary tensor data after it (binary extension). */
export function splitBody(req: IncomingMessage, body: Buffer): { json: Buffer; binary: Buffer | null } {
  const raw = req.headers['inference-header-content-length'];
  if (raw === undefined) return { json: body, binary: null };
  const length = Number(raw);
  if (!Number.isInteger(length) || length < 0 || length > body.length) {
    throw new FleetError(
      'INPUT_INVALID',
      `Inference-Header-Content-Length ${raw} is not a length within the ${body.length}-byte body`,
    );
  }
  return { json: body.subarray(0, length), binary: body.subarray(length) };
}

export function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new FleetError('MSG_NOT_JSON', `request body is not JSON: ${(error as Error).message}`);
  }
}
