// What a suite hands back (sections of tables and notes), rendered twice: as aligned text for
// the terminal and as Markdown for bench/RESULTS.md.

export interface Table {
  columns: string[];
  rows: string[][];
}

export interface Section {
  title: string;
  /** how it was measured, one line each */
  method: string[];
  tables: Table[];
  notes: string[];
}

/** A cell is right-aligned when it starts like a figure (digits, sign, ≤ ≥ or a dash for "none"). */
const isFigure = (cell: string): boolean => /^[-+−≤≥~]?\s?[\d.,]/.test(cell) || cell === '—';

function renderTextTable(table: Table): string[] {
  const widths = table.columns.map((c, i) => Math.max(c.length, ...table.rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[], header: boolean): string =>
    cells
      .map((cell, i) => {
        const width = widths[i] ?? cell.length;
        return !header && isFigure(cell) ? cell.padStart(width) : cell.padEnd(width);
      })
      .join('  ')
      .trimEnd();
  return [line(table.columns, true), widths.map((w) => '─'.repeat(w)).join('  '), ...table.rows.map((r) => line(r, false))];
}

export function renderText(sections: Section[]): string {
  const out: string[] = [];
  for (const s of sections) {
    out.push('', s.title, '═'.repeat(s.title.length));
    for (const m of s.method) out.push(m);
    for (const t of s.tables) out.push('', ...renderTextTable(t).map((l) => `  ${l}`));
    if (s.notes.length > 0) out.push('', ...s.notes.map((n) => `  · ${n}`));
  }
  return `${out.join('\n')}\n`;
}

const escapeCell = (cell: string): string => cell.replace(/\|/g, '\\|');

function renderMarkdownTable(table: Table): string[] {
  return [
    `| ${table.columns.map(escapeCell).join(' | ')} |`,
    `|${table.columns.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`,
    ...table.rows.map((r) => `| ${r.map(escapeCell).join(' | ')} |`),
  ];
}

export function renderMarkdown(sections: Section[]): string {
  const out: string[] = [];
  for (const s of sections) {
    out.push(`## ${s.title}`, '', ...s.method, '');
    for (const t of s.tables) out.push(...renderMarkdownTable(t), '');
    for (const n of s.notes) out.push(`- ${n}`);
    if (s.notes.length > 0) out.push('');
  }
  return out.join('\n');
}
