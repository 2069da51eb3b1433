/**
 * `cli/gpu/pack.sh` step: copies the real X-rays of one paper-size trial (trial 1's subset and
 * the held-out set, chosen as gpu/paper-data.ts says) into the GPU pack.
 *
 *   node --import tsx cli/gpu/pack-paper-data.ts SOURCE_DIR DEST_DIR
 */
import { packPaperData } from '../../gpu/paper-data.js';

const [source, dest] = process.argv.slice(2);
if (!source || !dest) {
  console.error('usage: pack-paper-data.ts SOURCE_DIR DEST_DIR');
  process.exit(2);
}
const manifest = await packPaperData(source, dest);
console.log(
  `ok   paper-trial data: ${manifest.subset.length} subset + ${manifest.heldout.length} held-out X-rays from ${source}`,
);
