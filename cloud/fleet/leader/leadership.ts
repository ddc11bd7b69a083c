import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

/**
 * Which replica drives the fleet-wide duties (rollouts, retention, offline detection). Several
 * cloud processes may share one store; exactly one of them is leader at a time, and when it
 * dies another takes over (docs/scale.md gives the bounds of each implementation).
 */
export interface Leadership {
  readonly isLeader: boolean;
  /** Who this replica is (host:pid:random), as recorded by the implementation. */
  readonly replicaId: string;
  /** Called with true on gaining and false on losing leadership. */
  onChange(listener: (leader: boolean) => void): void;
  /** First attempt made when it resolves (so a lone replica leads right away). */
  start(): Promise<void>;
  /** Gives leadership up (another replica takes over at its next attempt) and stops trying. */
  stop(): Promise<void>;
}

export function newReplicaId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

/** Base: listener bookkeeping and the one place leadership flips. */
export abstract class LeadershipBase implements Leadership {
  readonly replicaId = newReplicaId();
  private leader = false;
  private readonly listeners: Array<(leader: boolean) => void> = [];

  get isLeader(): boolean {
    return this.leader;
  }

  onChange(listener: (leader: boolean) => void): void {
    this.listeners.push(listener);
  }

  protected set(leader: boolean): void {
    if (leader === this.leader) return;
    this.leader = leader;
    for (const listener of this.listeners) listener(leader);
  }

  abstract start(): Promise<void>;
  abstract stop(): Promise<void>;
}

/** The single-process default (embedded broker): always the leader. */
export class SoloLeadership extends LeadershipBase {
  async start(): Promise<void> {
    this.set(true);
  }

  async stop(): Promise<void> {
    this.set(false);
  }
}
