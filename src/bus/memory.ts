// The in-process bus of the embedded default: one node, no network.
import type { Bus } from './port.ts';

export class MemoryBus implements Bus {
  private readonly listeners = new Set<(seq: number) => void>();

  async publish(seq: number): Promise<void> {
    for (const listener of this.listeners) listener(seq);
  }

  subscribe(onWake: (seq: number) => void): () => void {
    this.listeners.add(onWake);
    return () => this.listeners.delete(onWake);
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }
}
