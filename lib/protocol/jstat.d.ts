/** The few jStat distributions this project uses (jstat ships no type declarations). */
declare module 'jstat' {
  interface Distribution {
    cdf(x: number, ...parameters: number[]): number;
    inv(p: number, ...parameters: number[]): number;
  }
  const jStat: {
    studentt: Distribution;
    chisquare: Distribution;
    binomial: { cdf(k: number, n: number, p: number): number; pdf(k: number, n: number, p: number): number };
  };
  export default jStat;
}
