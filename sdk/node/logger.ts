/** The node's log: JSON lines with levels (pino), on stdout. Keys are never logged: no field holds one. */
import { pino, type Logger } from "pino";

export function nodeLogger(level: string, destination: NodeJS.WritableStream = process.stdout): Logger {
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label) => ({ level: label }) } }, destination as pino.DestinationStream);
}
