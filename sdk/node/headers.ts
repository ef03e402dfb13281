/** Headers of the control API's answers that its clients read (the CLI, the tests): one name for both sides. */

/** The header of a standby's answers from a snapshot: when it was read (ISO time; it holds every commit before). */
export const AS_OF_HEADER = "x-channels-as-of";
