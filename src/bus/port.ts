// The revocation bus port. A bus only wakes readers sooner: it carries "the log moved to seq N",
// never the rows themselves, so a lost message costs latency (until the next poll), never a revocation.

export interface Bus {
  /** Tells every subscriber (in this process and others) that rows up to `seq` are committed. */
  publish(seq: number): Promise<void>;
  /** Calls `onWake` for every publish; returns the unsubscribe function. */
  subscribe(onWake: (seq: number) => void): () => void;
  close(): Promise<void>;
}
