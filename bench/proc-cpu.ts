import { readFileSync } from 'node:fs';

/**
 * user + system CPU of a process in ms, from /proc/PID/stat (fields 14 and 15, in clock ticks of
 * 10 ms: USER_HZ is 100 on Linux); NaN when the process is gone.
 */
export function processCpuMs(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return Number.NaN;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}
