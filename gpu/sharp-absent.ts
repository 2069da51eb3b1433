/**
 * Stands in for `sharp` in the GPU pack's bundle (cli/gpu/pack.sh aliases it): the pack's steps
 * work on pixel arrays and never decode or encode an image, and sharp's native libvips is not
 * shipped. A call says so instead of failing on a missing module at start-up. Module-level
 * configuration calls (`sharp.cache(false)` in lib/images.ts) have nothing to configure and pass.
 */
function sharpAbsent(): never {
  throw new Error('sharp (image codecs) is not part of the GPU pack; its steps work on pixel arrays only');
}
sharpAbsent.cache = (): void => {};

export default sharpAbsent;
