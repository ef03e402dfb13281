/** The lines of the node's event stream, read with a bound: no tab holds a line that never ends. */

/**
 * The longest line read, in characters. The node's events are far shorter (a peer's message is at most 1 MiB); a
 * longer line, or one that never ends, is no event.
 */
export const MAX_EVENT_LINE = 4 << 20;

/** A line past MAX_EVENT_LINE: the stream is given up (cancelled, not read further). */
export class LineTooLongError extends Error {
  constructor(readonly max: number) {
    super(`event stream: a line longer than ${max} characters`);
  }
}

/**
 * Calls `onLine` with each line of `stream` (without its newline) until the stream ends (resolves) or fails
 * (rejects); rejects with LineTooLongError, the stream cancelled, once a line passes `max`. Each chunk is searched
 * once: a long line is kept as its pieces, not joined and split again at every chunk.
 */
export async function readLines(stream: ReadableStream<string>, onLine: (line: string) => void, max = MAX_EVENT_LINE): Promise<void> {
  const reader = stream.getReader();
  let held: string[] = []; // the line so far, as it came
  let heldLength = 0;
  const tooLong = async () => {
    await reader.cancel().catch(() => {});
    return new LineTooLongError(max);
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    let start = 0;
    for (let end = value.indexOf("\n"); end !== -1; start = end + 1, end = value.indexOf("\n", start)) {
      if (heldLength + end - start > max) throw await tooLong();
      const line = held.join("") + value.slice(start, end);
      held = [];
      heldLength = 0;
      onLine(line);
    }
    if (start < value.length) {
      held.push(value.slice(start));
      heldLength += value.length - start;
      if (heldLength > max) throw await tooLong();
    }
  }
}
