/**
 * Telling a process apart from a later one that reuses its pid: a pid, its start time and its
 * command line together name one process. Cleanup after a crash acts only on a process whose
 * three still match what was recorded, so it never stops an unrelated program.
 *
 * Start time: field 22 of /proc/<pid>/stat (clock ticks since boot) on Linux, `ps -o lstart=`
 * elsewhere.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { z } from 'zod';

const execFileAsync = promisify(execFile);

export const ProcessIdentitySchema = z.object({
  pid: z.number().int().positive(),
  startTime: z.string().min(1),
  commandLine: z.string(),
});
export type ProcessIdentity = z.infer<typeof ProcessIdentitySchema>;

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The identity of a running process, or undefined when no process has that pid. */
export async function processIdentity(pid: number): Promise<ProcessIdentity | undefined> {
  if (!isAlive(pid)) return undefined;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') return undefined; // exited, not yet reaped by its parent
    const commandLine = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ').trim();
    return { pid, startTime: `boot+${fields[19]}`, commandLine };
  } catch {
    try {
      const { stdout } = await execFileAsync('ps', ['-o', 'lstart=,args=', '-p', String(pid)], { timeout: 5_000 });
      const line = stdout.trim();
      // lstart is a fixed 24-character date ("Mon Jan  1 00:00:00 2024").
      return line ? { pid, startTime: line.slice(0, 24), commandLine: line.slice(24).trim() } : undefined;
    } catch {
      return undefined;
    }
  }
}

/** True when the recorded process is still running: same pid, start time and command line. */
export async function isSameProcess(recorded: ProcessIdentity): Promise<boolean> {
  const now = await processIdentity(recorded.pid);
  return now !== undefined && now.startTime === recorded.startTime && now.commandLine === recorded.commandLine;
}

/**
 * Stops a recorded process if (and only if) it is still that process: SIGTERM, then SIGKILL
 * after `graceMs`. Returns what it did.
 */
export async function stopIfSameProcess(
  recorded: ProcessIdentity,
  graceMs = 10_000,
): Promise<'stopped' | 'killed' | 'not running'> {
  if (!(await isSameProcess(recorded))) return 'not running';
  process.kill(recorded.pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while ((await isSameProcess(recorded)) && Date.now() < deadline) await sleep(100);
  if (!(await isSameProcess(recorded))) return 'stopped';
  process.kill(recorded.pid, 'SIGKILL');
  while (await isSameProcess(recorded)) await sleep(50);
  return 'killed';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
