/**
 * Writes one benchmark's section into BENCHMARKS.md, replacing the previous figures of the
 * same section and leaving the others alone.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';

const FILE = new URL('../../BENCHMARKS.md', import.meta.url);

export function machineLine(): string {
  return `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), Node ${process.version}`;
}

export function markdownTable(header: string[], rows: Array<Array<string | number>>): string {
  const line = (cells: Array<string | number>) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Replaces (or appends) the `## <title>` section. */
export async function writeBenchmarkSection(title: string, body: string): Promise<void> {
  let text = '';
  try {
    text = await readFile(FILE, 'utf8');
  } catch {
    text = '# Benchmarks\n';
  }
  const heading = `## ${title}`;
  const section = `${heading}\n\n${body.trim()}\n`;
  const start = text.indexOf(`${heading}\n`);
  if (start < 0) {
    text = `${text.trimEnd()}\n\n${section}`;
  } else {
    const next = text.indexOf('\n## ', start + heading.length);
    text = text.slice(0, start) + section + (next < 0 ? '' : text.slice(next + 1));
  }
  await writeFile(FILE, text.endsWith('\n') ? text : `${text}\n`);
}
