/**
 * One line for a failed call or send: the node's own message (e.g. "Sender doesn't have enough funds",
 * "replacement transaction underpriced"), or ethers' short message, never the whole request with its signed
 * transaction. For reverts of the hub, `ChainCallError` names the custom error instead (sdk/chain/hub.ts).
 */
export function shortMessage(error: unknown): string {
  let e: unknown = error;
  for (let depth = 0; depth < 5 && e !== null && typeof e === "object"; depth++) {
    const inner = (e as { info?: { error?: { message?: unknown } } }).info?.error?.message;
    if (typeof inner === "string") return inner.split("\n")[0]!;
    e = (e as { error?: unknown; cause?: unknown }).error ?? (e as { cause?: unknown }).cause;
  }
  const short = (error as { shortMessage?: unknown } | null)?.shortMessage;
  if (typeof short === "string") return short;
  return (error instanceof Error ? error.message : String(error)).split("\n")[0]!.slice(0, 300);
}
