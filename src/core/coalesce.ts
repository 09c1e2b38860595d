// One run of an async task at a time, with wake-ups folded in: a wake during a run makes the
// run go once more, so no wake-up is lost and none piles up. Used by the revocation sync loop
// and by every revocation feed stream.

export class CoalescedRun {
  private running: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly task: () => Promise<void>,
    private readonly onError: (err: unknown) => void,
    /** true once the owner is closing: no further repeat */
    private readonly done: () => boolean = () => false,
  ) {}

  /** Starts a run, or asks the one in progress to go once more; resolves when that run ends. */
  wake(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.task();
        } while (this.again && !this.done());
      } catch (err) {
        this.onError(err);
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }

  /** Resolves when no run is in progress. */
  async settled(): Promise<void> {
    await this.running;
  }
}
