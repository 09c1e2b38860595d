// A parser for text/event-stream (the WHATWG server-sent events format), fed decoded text in
// whatever chunks the network delivers.

export interface ServerEvent {
  /** `message` when the stream names none */
  event: string;
  data: string;
  /** the `id:` field of this event, if it had one */
  id: string | undefined;
}

/** Longest line we hold while waiting for its end; a feed line is a few hundred bytes. */
const MAX_LINE = 64 * 1024;

export class EventStreamParser {
  private buffer = '';
  private event = '';
  private data: string[] = [];
  private id: string | undefined = undefined;
  private hasData = false;

  constructor(private readonly onEvent: (event: ServerEvent) => void) {}

  /** Feeds text; calls onEvent for each complete event. Throws when a line grows past any sane size. */
  push(text: string): void {
    this.buffer += text;
    let start = 0;
    for (;;) {
      const lf = this.buffer.indexOf('\n', start);
      const cr = this.buffer.indexOf('\r', start);
      let end: number;
      let next: number;
      if (cr >= 0 && (lf < 0 || cr < lf)) {
        // a CR at the very end may be the first half of CRLF: wait for the next chunk
        if (cr === this.buffer.length - 1) break;
        end = cr;
        next = this.buffer[cr + 1] === '\n' ? cr + 2 : cr + 1;
      } else if (lf >= 0) {
        end = lf;
        next = lf + 1;
      } else {
        break;
      }
      this.line(this.buffer.slice(start, end));
      start = next;
    }
    this.buffer = this.buffer.slice(start);
    if (this.buffer.length > MAX_LINE) throw new Error('event stream line too long');
  }

  private line(line: string): void {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.event = value;
        break;
      case 'data':
        this.data.push(value);
        this.hasData = true;
        break;
      case 'id':
        if (!value.includes('\0')) this.id = value;
        break;
      // `retry` and unknown fields: the verifier keeps its own reconnection policy
    }
  }

  private dispatch(): void {
    const event = { event: this.event || 'message', data: this.data.join('\n'), id: this.id };
    const had = this.hasData;
    this.event = '';
    this.data = [];
    this.id = undefined;
    this.hasData = false;
    if (had) this.onEvent(event);
  }
}
