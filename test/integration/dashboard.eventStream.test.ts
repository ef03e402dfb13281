/**
 * The dashboard's reader of the node's event stream (dashboard/src/lines.ts, used by the page's Api.events) against a
 * stream no node should send: a line that never ends must not be held whole in the tab. Unbounded, the page kept it
 * all and split it again at every chunk: a page that Chromium served such a stream held 1.4 GB of heap within 20 s.
 * The reader gives the stream up once a line passes MAX_EVENT_LINE (the page reads it again 3 s later) and reads no
 * further. Ordinary lines, split anywhere across chunks, still arrive whole. No browser: the page's code on a
 * ReadableStream.
 */
import { expect } from "chai";

import { LineTooLongError, MAX_EVENT_LINE, readLines } from "../../dashboard/src/lines.js";

type Served = { stream: ReadableStream<string>; pulled: number; cancelled: boolean };

/** A stream of `chunks`, pulled one at a time, counting what was pulled and whether it was cancelled. */
function served(chunks: Iterable<string>): Served {
  const it = chunks[Symbol.iterator]();
  const s: Served = {
    pulled: 0,
    cancelled: false,
    stream: new ReadableStream<string>(
      {
        pull(controller) {
          const next = it.next();
          if (next.done) return controller.close();
          s.pulled += next.value.length;
          controller.enqueue(next.value);
        },
        cancel() {
          s.cancelled = true;
        },
      },
      { highWaterMark: 0 },
    ),
  };
  return s;
}

describe("the dashboard's event stream reader", function () {
  it("gives the stream up once a line passes MAX_EVENT_LINE, without reading the rest of it", async function () {
    const CHUNK = 64 << 10;
    const TOTAL = 4 * MAX_EVENT_LINE; // a stream that would end, far past the bound, without a newline
    const s = served(
      (function* () {
        yield `{"type":"first"}\n`;
        for (let sent = 0; sent < TOTAL; sent += CHUNK) yield "a".repeat(CHUNK);
        yield `\n{"type":"after"}\n`;
      })(),
    );
    const lines: string[] = [];
    const outcome = await readLines(s.stream, (line) => lines.push(line)).then(() => "ended", (error: unknown) => error);
    expect(outcome).to.be.instanceOf(LineTooLongError);
    expect(lines).to.deep.equal([`{"type":"first"}`]);
    expect(s.cancelled, "the stream cancelled").to.equal(true);
    expect(s.pulled, "read no further than the bound and a chunk").to.be.at.most(MAX_EVENT_LINE + 2 * CHUNK);
  });

  it("gives up a line past the bound that came whole in one chunk", async function () {
    const s = served([`{"type":"first"}\n${"a".repeat(101)}\n{"type":"after"}\n`]);
    const lines: string[] = [];
    const outcome = await readLines(s.stream, (line) => lines.push(line), 100).then(() => "ended", (error: unknown) => error);
    expect([outcome instanceof LineTooLongError, lines]).to.deep.equal([true, [`{"type":"first"}`]]);
  });

  it("reads lines split anywhere across chunks, several in a chunk, empty ones (keep-alives) between them", async function () {
    const lines = [`{"type":"a","x":"${"é".repeat(1000)}"}`, "", `{"type":"b"}`, `{"type":"c"}`, ""];
    const text = lines.map((l) => `${l}\n`).join("") + `{"type":"unfinished"`;
    const chunks: string[] = [];
    for (let i = 0, size = 1; i < text.length; i += size, size = ((size * 7) % 97) + 1) chunks.push(text.slice(i, i + size));
    const seen: string[] = [];
    await readLines(served(chunks).stream, (line) => seen.push(line));
    expect(seen).to.deep.equal(lines);
  });
});
