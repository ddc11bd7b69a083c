import type { ChannelGroup } from './channel-ops.js';

/**
 * Channel groups under union-find: groups joined by a residual addition or a channel-wise
 * product become one set. Joining groups of different widths fixes both (they cannot be
 * narrowed consistently).
 */
export class GroupSets {
  private parent: number[] = [];
  private groups: ChannelGroup[] = [];

  /** A new group of `size` channels; returns its id. */
  add(size: number): number {
    const id = this.groups.length;
    this.parent.push(id);
    this.groups.push({ id, size, bindings: [], bnScales: [], producers: [], depthwise: [], fixed: false });
    return id;
  }

  /** The group as it was opened (its own bindings only). */
  own(id: number): ChannelGroup {
    return this.groups[id];
  }

  /** The set's representative, which holds the set's width and fixed flag. */
  root(id: number): ChannelGroup {
    return this.groups[this.find(id)];
  }

  find(i: number): number {
    while (this.parent[i] !== i) {
      this.parent[i] = this.parent[this.parent[i]];
      i = this.parent[i];
    }
    return i;
  }

  union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra === rb) return;
    if (this.groups[ra].size !== this.groups[rb].size) {
      this.groups[ra].fixed = true;
      this.groups[rb].fixed = true;
    }
    this.parent[rb] = ra;
  }

  /** One group per set, with the bindings, scales and producers of all its members. */
  merged(): ChannelGroup[] {
    const merged = new Map<number, ChannelGroup>();
    this.groups.forEach((g, i) => {
      const root = this.find(i);
      const into = merged.get(root) ?? {
        ...this.groups[root],
        id: root,
        bindings: [],
        bnScales: [],
        producers: [],
      };
      into.bindings.push(...g.bindings);
      into.bnScales.push(...g.bnScales);
      into.producers.push(...g.producers);
      into.fixed ||= g.fixed;
      merged.set(root, into);
    });
    return [...merged.values()];
  }
}
