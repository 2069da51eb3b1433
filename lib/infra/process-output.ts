/** Reading a child process's output: line splitting, a bounded tail, short error texts. */

/** Keeps the last `max` lines of a stream (ANSI colours stripped). */
export class LineTail {
  private readonly lines: string[] = [];
  constructor(private readonly max: number) {}
  push(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.max) this.lines.shift();
  }
  text(): string {
    return this.lines.join('\n');
  }
}

/** A 'data' listener that calls onLine per complete line. */
export function lineSplitter(onLine: (line: string) => void): (chunk: string) => void {
  let partial = '';
  return (chunk: string) => {
    const parts = (partial + chunk).split(/\r?\n/);
    partial = parts.pop() ?? '';
    for (const p of parts) {
      // eslint-disable-next-line no-control-regex
      const line = p.replace(/\u001b\[[0-9;]*m/g, '').trimEnd();
      if (line) onLine(line);
    }
  };
}

export function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}

export function errorText(err: unknown, max: number): string {
  const s = err instanceof Error ? err.message : String(err);
  return s.length > max ? `${s.slice(0, max)}...` : s;
}
