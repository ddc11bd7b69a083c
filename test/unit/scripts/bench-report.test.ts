import { describe, expect, it } from 'vitest';
import { replaceSection, vectorIsa } from '../../../scripts/bench/report.js';

// A `--write` rerun used to replace a section together with its hand-written subsections, and
// glued the next heading to the new table (no blank line).
describe('BENCHMARKS.md sections', () => {
  const doc = [
    '# Benchmarks',
    '',
    '## A',
    '',
    'old figures of A',
    '',
    '### How A was trained',
    '',
    'kept by hand',
    '',
    '## B',
    '',
    'figures of B',
    '',
  ].join('\n');

  it('replaces the section body only, keeps its subsections and a blank line before them', () => {
    const out = replaceSection(doc, 'A', 'new figures of A');
    expect(out).toBe(doc.replace('old figures of A', 'new figures of A'));
  });

  it('keeps a blank line before the next section when there is no subsection', () => {
    const out = replaceSection(doc, 'B', 'new B');
    expect(out).toBe(doc.replace('figures of B', 'new B'));
    const noSub = '## X\n\nx\n## Y\n\ny\n';
    expect(replaceSection(noSub, 'X', 'x2')).toBe('## X\n\nx2\n\n## Y\n\ny\n');
  });

  it('appends a new section at the end, and does not match a heading that only starts the same', () => {
    const out = replaceSection(doc, 'C', 'figures of C');
    expect(out).toBe(`${doc.trimEnd()}\n\n## C\n\nfigures of C\n`);
    expect(replaceSection('## AB\n\nab\n', 'A', 'a')).toBe('## AB\n\nab\n\n## A\n\na\n');
  });
});

// Two hosts both named "AMD EPYC" gave INT8/FP32 ×1.01 and ×0.65 for the same detector: the
// machine line names the vector instructions so that such figures are not compared blindly.
describe('the machine line', () => {
  it('names the vector width and whether VNNI is there', () => {
    expect(vectorIsa(new Set(['fpu', 'avx2', 'fma']))).toBe('AVX2, no VNNI');
    expect(vectorIsa(new Set(['avx2', 'avx512f', 'avx512_vnni']))).toBe('AVX-512, VNNI');
    expect(vectorIsa(new Set(['avx2', 'avx_vnni']))).toBe('AVX2, VNNI');
    expect(vectorIsa(new Set())).toBe('');
  });
});
