// What the core reports for monitoring. The core knows no metrics library: the composition
// root passes an implementation (Prometheus in src/server/metrics.ts) or none.
import type { RevocationRow } from '../store/port.ts';

export type LoginOutcome = 'success' | 'failure' | 'throttled' | 'locked';
export type RefreshOutcome = 'success' | 'invalid' | 'reused';

export interface LatchMetrics {
  login(outcome: LoginOutcome): void;
  refresh(outcome: RefreshOutcome): void;
  /** rows this process committed */
  revocationsWritten(count: number): void;
  /** rows read from the store and applied here; lag = apply time − commit time */
  revocationsApplied(rows: readonly RevocationRow[], nowMs: number): void;
  /** a background error: `source` says where (store, bus) */
  backgroundError(source: 'store' | 'bus' | 'other'): void;
}

export const NO_METRICS: LatchMetrics = {
  login: () => {},
  refresh: () => {},
  revocationsWritten: () => {},
  revocationsApplied: () => {},
  backgroundError: () => {},
};
