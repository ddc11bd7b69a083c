import { z } from 'zod';
import type { Role } from '../identity/tokens.js';

/** What a route declares about itself for the OpenAPI document. */
export interface RouteDoc {
  summary: string;
  /** Least role that may call it; omitted for public routes. */
  role?: Role;
  body?: z.ZodType;
  query?: z.ZodType;
  /** Content type of a raw body (uploads). */
  rawBody?: string;
}

/** Route options carrying the doc: `app.post(url, { ...doc({...}), preHandler }, handler)`. */
export function doc(routeDoc: RouteDoc): { config: { openapi: RouteDoc } } {
  return { config: { openapi: routeDoc } };
}

export interface DocumentedRoute {
  method: string;
  url: string;
  doc?: RouteDoc;
}

/** A request schema as JSON Schema, input side: a field with a default is not required of callers. */
function jsonSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, {
    unrepresentable: 'any',
    io: 'input',
  }) as Record<string, unknown>;
  return rest;
}

/**
 * Builds an OpenAPI 3.1 document from the registered routes and the same zod schemas that
 * validate their input, so the document cannot drift from what the server accepts.
 */
export function buildOpenApi(routes: DocumentedRoute[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    if (!route.url.startsWith('/api/') || route.method === 'HEAD') continue;
    const path = route.url.replace(/:(\w+)/g, '{$1}');
    const params = [...route.url.matchAll(/:(\w+)/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    const d = route.doc;
    const query = d?.query ? jsonSchema(d.query) : undefined;
    const queryParams = query?.properties
      ? Object.entries(query.properties as Record<string, unknown>).map(([name, schema]) => ({
          name,
          in: 'query',
          required: ((query.required as string[] | undefined) ?? []).includes(name),
          schema,
        }))
      : [];
    const operation: Record<string, unknown> = {
      summary: d?.summary ?? `${route.method} ${route.url}`,
      parameters: [...params, ...queryParams],
      responses: {
        '200': { description: 'success' },
        '4XX': {
          description: 'coded error',
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
        },
      },
    };
    if (d?.role) {
      operation.security = [{ bearer: [] }];
      operation['x-fleetml-role'] = d.role;
    }
    if (d?.body)
      operation.requestBody = {
        required: true,
        content: { 'application/json': { schema: jsonSchema(d.body) } },
      };
    if (d?.rawBody)
      operation.requestBody = {
        required: true,
        content: { [d.rawBody]: { schema: { type: 'string', format: 'binary' } } },
      };
    paths[path] ??= {};
    paths[path][route.method.toLowerCase()] = operation;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'fleetml cloud API',
      version,
      description: 'Every route needs `Authorization: Bearer <token>`; roles viewer < operator < admin.',
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Error: {
          type: 'object',
          properties: {
            error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } } },
          },
        },
      },
    },
    paths,
  };
}

declare module 'fastify' {
  interface FastifyContextConfig {
    openapi?: RouteDoc;
  }
}
