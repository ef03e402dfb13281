/** The keystore password: from its environment variable, else asked on the terminal (not echoed). */
import { createInterface } from "node:readline";

import { own } from "../node/config.js";
import { UsageError } from "../node/errors.js";

export async function password(variable: string): Promise<string> {
  const fromEnv = own(process.env, variable);
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  if (!process.stdin.isTTY) throw new UsageError(`${variable}: not set and no terminal to ask on; give the keystore's password`);
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
  // Echo the question only, never what is typed.
  (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = (s: string) => {
    if (s.startsWith("keystore password")) process.stderr.write(s);
  };
  const answer = await new Promise<string>((ok) => rl.question("keystore password: ", ok));
  rl.close();
  process.stderr.write("\n");
  if (answer === "") throw new UsageError("the password is empty");
  return answer;
}
