export interface Progress {
  progress: number;
  stage: string;
}

export interface ProgressForwarder {
  /** Hands over the newest progress; it is sent now or, if one was sent lately, when the interval ends. */
  push(p: Progress): void;
  /** Drops what is still waiting and resolves once every update already sent has settled. */
  close(): Promise<void>;
}

/**
 * Forwards a child's progress to the job row at most once per `intervalMs` without losing the
 * newest value: a burst keeps only its last line, which is sent when the interval ends (a plain
 * "skip if too soon" would drop it, and a job could show 11 % for the whole of a long stage).
 * Updates run one after another, so an older value never lands after a newer one.
 */
export function progressForwarder(
  send: (p: Progress) => Promise<unknown>,
  intervalMs = 250,
): ProgressForwarder {
  let lastSent = Number.NEGATIVE_INFINITY;
  let pending: Progress | undefined;
  let timer: NodeJS.Timeout | undefined;
  let chain: Promise<unknown> = Promise.resolve();
  let closed = false;

  const flush = () => {
    timer = undefined;
    if (!pending || closed) return;
    const p = pending;
    pending = undefined;
    lastSent = Date.now();
    chain = chain.then(() => send(p)).catch(() => undefined);
  };

  return {
    push(p) {
      if (closed) return;
      pending = p;
      const wait = lastSent + intervalMs - Date.now();
      if (wait <= 0) flush();
      else timer ??= setTimeout(flush, wait);
    },
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      pending = undefined;
      await chain;
    },
  };
}
