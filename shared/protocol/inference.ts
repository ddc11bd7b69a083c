import { z } from 'zod';

/**
 * Request bodies of the Open Inference Protocol v2 (KServe v2 / Triton HTTP/REST) as the agent's
 * local inference service accepts them. Tensor `data` is checked element by element while it is
 * copied into a typed array (one pass), so the schema leaves it open here.
 */
const parameterValue = z.union([z.string().max(4096), z.number(), z.boolean()]);
const parameters = z.record(z.string().max(128), parameterValue).optional();

export const inferInputSchema = z.object({
  name: z.string().min(1).max(256),
  shape: z.array(z.number().int().nonnegative()).max(16),
  datatype: z.string().min(1).max(16),
  parameters,
  data: z.unknown().optional(),
});
export type InferInput = z.infer<typeof inferInputSchema>;

export const inferRequestedOutputSchema = z.object({ name: z.string().min(1).max(256), parameters });
export type InferRequestedOutput = z.infer<typeof inferRequestedOutputSchema>;

export const inferRequestSchema = z.object({
  id: z.string().max(256).optional(),
  parameters,
  inputs: z.array(inferInputSchema).min(1).max(64),
  outputs: z.array(inferRequestedOutputSchema).max(64).optional(),
});
export type InferRequest = z.infer<typeof inferRequestSchema>;

/** One output tensor of an inference response (JSON data, or binary_data_size with the bytes after the JSON). */
export interface InferResponseOutput {
  name: string;
  datatype: string;
  shape: number[];
  data?: (number | boolean)[];
  parameters?: { binary_data_size: number };
}

export interface InferResponse {
  model_name: string;
  model_version: string;
  id?: string;
  outputs: InferResponseOutput[];
}

/** Metadata of one tensor as `GET /v2/models/{name}` reports it (-1 for a dynamic dimension). */
export interface TensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

export interface ModelMetadata {
  name: string;
  versions: string[];
  platform: string;
  inputs: TensorMetadata[];
  outputs: TensorMetadata[];
}
