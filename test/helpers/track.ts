/** A promise watched without awaiting it: whether it has ended, and its error if it failed (never unhandled). */
export function track<T>(promise: Promise<T>) {
  const t = { done: false, failed: undefined as unknown, promise };
  promise.then(
    () => (t.done = true),
    (error: unknown) => {
      t.done = true;
      t.failed = error;
    },
  );
  return t;
}
