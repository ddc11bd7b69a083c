/**
 * Writes one benchmark's section into BENCHMARKS.md, replacing the previous figures of the
 * same section and leaving the others alone.
 */
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';

const FILE = new URL('../../BENCHMARKS.md', import.meta.url);

export function machineLine(): string {
  const isa = vectorIsa(cpuFlags());
  const cpu = [cpus()[0]?.model ?? 'unknown CPU', isa].filter(Boolean).join(', ');
  return `${cpus().length} cores (${cpu}), Node ${process.version}`;
}

/**
 * The vector instructions that decide onnxruntime's kernels: hosts that share a CPU name
 * ("AMD EPYC") differ here, and INT8 only beats float where VNNI is there, so a figure
 * without them cannot be compared with another run's.
 */
export function vectorIsa(flags: ReadonlySet<string>): string {
  if (flags.size === 0) return '';
  const width = flags.has('avx512f') ? 'AVX-512' : flags.has('avx2') ? 'AVX2' : 'no AVX2';
  const vnni = flags.has('avx512_vnni') || flags.has('avx_vnni') ? 'VNNI' : 'no VNNI';
  return `${width}, ${vnni}`;
}

function cpuFlags(): ReadonlySet<string> {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m);
    return new Set(line ? line[1].trim().split(/\s+/) : []);
  } catch {
    return new Set(); // not Linux: the CPU name alone
  }
}

export function markdownTable(header: string[], rows: Array<Array<string | number>>): string {
  const line = (cells: Array<string | number>) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/**
 * Replaces (or appends) the `## <title>` section's own text, up to its first `###` subsection
 * or the next `##` section: subsections written by hand (how a model was trained, A/B runs)
 * survive a rerun with `--write`.
 */
export async function writeBenchmarkSection(
  title: string,
  body: string,
  file: string | URL = FILE,
): Promise<void> {
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch {
    text = '# Benchmarks\n';
  }
  await writeFile(file, replaceSection(text, title, body));
}

/** `text` with the body of `## <title>` replaced (see writeBenchmarkSection). */
export function replaceSection(text: string, title: string, body: string): string {
  const heading = `## ${title}`;
  const section = `${heading}\n\n${body.trim()}\n`;
  const found = text.startsWith(`${heading}\n`) ? 0 : text.indexOf(`\n${heading}\n`);
  if (found < 0) return `${text.trimEnd()}\n\n${section}`;
  const start = found === 0 && text.startsWith(heading) ? 0 : found + 1;
  const after = start + heading.length;
  const next = /\n###? /.exec(text.slice(after));
  const out = text.slice(0, start) + section + (next ? `\n${text.slice(after + next.index + 1)}` : '');
  return out.endsWith('\n') ? out : `${out}\n`;
}
