// The TypeChain types and factories of the contracts this package ships (test contracts are left out): import them
// as `crosschain-channels/typechain-types`.
export type { ChannelHub } from "../typechain-types/ChannelHub.js";
export type { SecretRegistry } from "../typechain-types/SecretRegistry.js";
export type { IChannelHub } from "../typechain-types/interfaces/IChannelHub.js";
export type { ISecretRegistry } from "../typechain-types/interfaces/ISecretRegistry.js";
export { ChannelHub__factory } from "../typechain-types/factories/ChannelHub__factory.js";
export { SecretRegistry__factory } from "../typechain-types/factories/SecretRegistry__factory.js";
export { IChannelHub__factory } from "../typechain-types/factories/interfaces/IChannelHub__factory.js";
export { ISecretRegistry__factory } from "../typechain-types/factories/interfaces/ISecretRegistry__factory.js";
