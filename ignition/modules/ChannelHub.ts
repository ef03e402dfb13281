import { buildModule } from "@nomicfoundation/hardhat-ignition/modules";

import SecretRegistryModule from "./SecretRegistry.js";

/** The channel hub of one chain, bound to that chain's secret registry. */
export default buildModule("ChannelHubModule", (m) => {
  const { registry } = m.useModule(SecretRegistryModule);
  const hub = m.contract("ChannelHub", [registry]);
  return { registry, hub };
});
