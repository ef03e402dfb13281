/** The node's refusals of a request, as the API answers them (api.ts maps each to its HTTP status). */
import { ChannelSdkError } from "../core/errors.js";

/** A request names something this node does not know (a channel, a swap, a peer): the API answers 404. */
export class NotFoundError extends ChannelSdkError {}
/** A request the node refuses as it stands (too little free balance, a channel busy or closed): the API answers 409. */
export class ConflictError extends ChannelSdkError {}
