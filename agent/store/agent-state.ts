import { join } from 'node:path';
import { z } from 'zod';
import { FleetError } from '../../shared/errors/index.js';
import { readJsonFile, writeFileAtomic } from './files.js';

const slotSchema = z.object({
  modelId: z.string(),
  version: z.number().int(),
  sha256: z.string(),
  size: z.number().int(),
  installedAt: z.string(),
  /** The manifest's serving shapes (input name -> dims), kept for the latency probe. */
  servingShapes: z.record(z.string(), z.array(z.number().int())).optional(),
});
export type SlotInfo = z.infer<typeof slotSchema>;
export type SlotName = 'a' | 'b';

/** What the device has converged to; persisted after every change so restarts resume it. */
export const agentStateSchema = z.object({
  /** Highest target version handled (applied or failed for good); lower or equal ones are ignored. */
  appliedTargetVersion: z.number().int().nullable(),
  /** Latest cloud-signed issuedAt seen, ms since epoch (trusted time for expiry). */
  latestSignedTimeMs: z.number(),
  activeSlot: z.enum(['a', 'b']).nullable(),
  slots: z.object({ a: slotSchema.nullable(), b: slotSchema.nullable() }),
  /** Last failure, reported with the state. */
  lastError: z.object({ code: z.string(), message: z.string() }).nullable(),
});
export type AgentState = z.infer<typeof agentStateSchema>;

export const INITIAL_STATE: AgentState = {
  appliedTargetVersion: null,
  latestSignedTimeMs: 0,
  activeSlot: null,
  slots: { a: null, b: null },
  lastError: null,
};

export class StateStore {
  private current: AgentState = structuredClone(INITIAL_STATE);
  constructor(private readonly dataDir: string) {}

  get path(): string {
    return join(this.dataDir, 'state.json');
  }

  get state(): AgentState {
    return this.current;
  }

  async load(): Promise<AgentState> {
    const value = await readJsonFile(this.path);
    if (value === undefined) return this.current;
    const parsed = agentStateSchema.safeParse(value);
    if (!parsed.success) {
      throw new FleetError(
        'CONFIG_INVALID',
        `agent state ${this.path} is invalid: ${parsed.error.issues[0]?.message}`,
      );
    }
    this.current = parsed.data;
    return this.current;
  }

  async update(change: (s: AgentState) => void): Promise<AgentState> {
    const next = structuredClone(this.current);
    change(next);
    await writeFileAtomic(this.path, JSON.stringify(next, null, 2));
    this.current = next;
    return next;
  }

  active(): SlotInfo | null {
    const s = this.current;
    return s.activeSlot ? s.slots[s.activeSlot] : null;
  }
}
