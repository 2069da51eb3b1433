/**
 * Switches the GPU bench flips to time one setting against another (gpu/variants.ts,
 * gpu/kernels.ts), and what puts each back as it was.
 */

/** What puts a switch back to its value now. */
export function restorer<T>(get: () => T, set: (value: T) => void): () => void {
  const before = get();
  return () => set(before);
}

/** Sets a switch to `value`; returns what puts its previous value back. */
export function setFor<T>(get: () => T, set: (value: T) => void, value: T): () => void {
  const restore = restorer(get, set);
  set(value);
  return restore;
}
