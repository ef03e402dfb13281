import { UnexpectedMessageError } from "../core/errors.js";
import { unseal, type Envelope, type SwapBody } from "../core/messages.js";
import { finalize } from "../core/state.js";
import type { Hex } from "../core/types.js";
import type { Session } from "./session.js";

// Cooperative close (asset settlement in the normal case): both sign the final state, the requester submits it.

export async function requestClose(ctx: Session, channelId: Hex) {
  ctx.requireIdle(channelId);
  const final = finalize(ctx.book.head(channelId));
  const sig = ctx.book.sign(final);
  ctx.keepOutgoing(channelId, "closeRequest", { step: "closeRequest", state: final, sig });
  await ctx.sendStored(channelId, ["closeRequest"]);
}

export async function onCloseRequest(ctx: Session, envelope: Envelope, body: Extract<SwapBody, { step: "closeRequest" }>) {
  const channelId = envelope.swapId;
  unseal(envelope, ctx.book.counterparty(channelId));
  ctx.requireIdle(channelId);
  const head = ctx.book.head(channelId);
  const final = head.isFinal ? head : finalize(head);
  ctx.requireSame(body.state, final, "final state");
  ctx.book.requireCounterSigned(final, body.sig);
  const mine = ctx.book.sign(final);
  ctx.o.store.transaction(() => {
    ctx.book.keepCoSigned(final, mine, body.sig);
    ctx.keepOutgoing(channelId, "closeAck", { step: "closeAck", sig: mine });
  });
  await ctx.sendStored(channelId, ["closeAck"]);
}

export async function onCloseAck(ctx: Session, envelope: Envelope, body: Extract<SwapBody, { step: "closeAck" }>) {
  const channelId = envelope.swapId;
  unseal(envelope, ctx.book.counterparty(channelId));
  const request = ctx.o.store.outgoing<Envelope>(channelId, "closeRequest");
  if (request === undefined || request.body.step !== "closeRequest") {
    throw new UnexpectedMessageError("a close acknowledgement without a close request");
  }
  const final = request.body.state;
  ctx.book.requireCounterSigned(final, body.sig);
  const cosigned = ctx.book.keepCoSigned(final, request.body.sig, body.sig);
  const { params, ref } = ctx.book.record(channelId);
  const chain = ctx.chain(ref.chainId);
  if ((await chain.channelInfo(channelId)).status !== "closed") await chain.closeCooperatively(params, cosigned);
  ctx.emit({ type: "closed", channelId, cooperative: true });
}
