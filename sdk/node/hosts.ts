/**
 * The Host header values a listener answers to. A web page that rebinds its own DNS name to 127.0.0.1 (DNS
 * rebinding) reaches a loopback listener from the user's browser, but the browser still sends the page's name as
 * Host: a listener that answers only the names it listens as turns such requests away before reading them.
 */
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";

const LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1"];
const WILDCARDS = new Set(["0.0.0.0", "::", ""]);

/** Whether `host` (a name or address a listener is configured with) is a loopback one. */
export function isLoopback(host: string): boolean {
  const h = bare(host);
  return h === "localhost" || h === "::1" || (isIP(h) === 4 && h.startsWith("127."));
}

/**
 * The Host values (lower case) a listener on `host:port` answers to: `host:port` itself; for a loopback listener
 * also 127.0.0.1, localhost and [::1] with that port; for a wildcard one (0.0.0.0, ::) also every address of this
 * machine's interfaces. `names` adds the URLs the listener is known by elsewhere (a peer URL it advertises, behind
 * a proxy or a DNS name): their host with their port. A port that is its scheme's default may also be left out,
 * as clients leave it out.
 */
export function listenerHosts(host: string, port: number, names: readonly string[] = []): ReadonlySet<string> {
  const out = new Set<string>();
  const add = (name: string, p: number, defaultPort = 80) => {
    const h = isIP(bare(name)) === 6 ? `[${bare(name)}]` : bare(name);
    out.add(`${h}:${p}`);
    if (p === defaultPort) out.add(h);
  };
  add(host, port);
  if (isLoopback(host) || WILDCARDS.has(bare(host))) for (const name of LOOPBACK_NAMES) add(name, port);
  if (WILDCARDS.has(bare(host))) {
    for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) add(i.address.replace(/%.*$/, ""), port);
  }
  for (const url of names) {
    const u = new URL(url);
    const defaultPort = u.protocol === "https:" ? 443 : 80;
    add(u.hostname, u.port === "" ? defaultPort : Number(u.port), defaultPort);
  }
  return out;
}

/** Whether a request's Host header is one of `allowed` (a missing Host, as HTTP/1.0 allows, is not). */
export function hostAllowed(allowed: ReadonlySet<string>, header: string | undefined): boolean {
  return header !== undefined && allowed.has(header.toLowerCase());
}

/** A host without IPv6 brackets, in lower case. */
function bare(host: string): string {
  const h = host.toLowerCase();
  return h.startsWith("[") && h.endsWith("]") ? h.slice(1, -1) : h;
}

/**
 * The source a connection's remote address counts against in per-source limits: an IPv4 address itself (also when
 * written as an IPv4-mapped IPv6 address), an IPv6 address's /64 prefix. One host is given a whole /64 (one LAN,
 * one customer), so counting IPv6 per address would let one machine take any number of shares.
 */
export function sourceOf(address: string): string {
  const a = address.toLowerCase().replace(/%.*$/, "");
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped !== null) return mapped[1]!;
  if (isIP(a) !== 6) return a;
  const [head, tail] = a.includes("::") ? a.split("::") : [a, undefined];
  const front = head === "" ? [] : head!.split(":");
  const back = tail === undefined || tail === "" ? [] : tail.split(":");
  const embeddedV4 = back.at(-1)?.includes(".") === true ? 1 : 0; // an IPv4 tail counts as two groups
  const groups = tail === undefined ? front : [...front, ...Array<string>(8 - front.length - back.length - embeddedV4).fill("0"), ...back];
  return `${groups.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(":")}::/64`;
}
