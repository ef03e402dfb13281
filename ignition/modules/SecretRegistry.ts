import { buildModule } from "@nomicfoundation/hardhat-ignition/modules";

/** The standalone secret registry: records first reveal times of sha256 hashlocks. */
export default buildModule("SecretRegistryModule", (m) => {
  const registry = m.contract("SecretRegistry");
  return { registry };
});
