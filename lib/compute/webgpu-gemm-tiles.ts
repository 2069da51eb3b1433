/**
 * WGSL that the tiled matrix products (./webgpu-conv-gemm.ts, ./webgpu-filter-gradient-gemm.ts)
 * share: 16 x 16 threads, each accumulating `rowsPerThread` rows (4 or 8) by 4 columns of a block
 * in `acc : array<vec4<f32>, rowsPerThread>`, from tiles in workgroup memory whose rows hold vec4s
 * (row ty * rowsPerThread + i of the block in tile A, columns tx * 4 .. + 3 in tile B).
 */

/** Multiplies one staged tile pair of `depth` rows into acc. */
export function multiplyStage(tileA: string, tileB: string, depth: number, rowsPerThread: 4 | 8): string {
  const groups = rowsPerThread / 4;
  const products = Array.from(
    { length: groups },
    (_, i) => `{
              let a = ${tileA}[q][ty * ${groups} + ${i}];
              acc[${4 * i}] = fma(vec4<f32>(a.x), b, acc[${4 * i}]);
              acc[${4 * i + 1}] = fma(vec4<f32>(a.y), b, acc[${4 * i + 1}]);
              acc[${4 * i + 2}] = fma(vec4<f32>(a.z), b, acc[${4 * i + 2}]);
              acc[${4 * i + 3}] = fma(vec4<f32>(a.w), b, acc[${4 * i + 3}]);
            }`,
  ).join('\n');
  return `for (var q = 0; q < ${depth}; q++) {
            let b = ${tileB}[q][tx];
            ${products}
          }`;
}

/**
 * Writes acc to the output as split `split` of [splits, rows, columns] (row-major), skipping
 * what lies past `rows` or `columns`; the block starts at row `rowBase`, column `columnBase`.
 */
export function storeBlock(
  rowsPerThread: 4 | 8,
  block: { rowBase: string; rows: string; columnBase: string; columns: string },
): string {
  return `for (var i = 0; i < ${rowsPerThread}; i++) {
          let row = ${block.rowBase} + ty * ${rowsPerThread} + i;
          for (var c = 0; c < 4; c++) {
            let column = ${block.columnBase} + tx * 4 + c;
            if (row < ${block.rows} && column < ${block.columns}) {
              setOutputAtIndex((split * ${block.rows} + row) * ${block.columns} + column, acc[i][c]);
            }
          }
        }`;
}
