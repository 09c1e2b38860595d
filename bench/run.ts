// `npm run bench [-- SUITE]`: runs a benchmark suite (core by default, `all` for every one), prints
// its tables and updates bench/RESULTS.md: one block per part, so a run replaces the figures of
// the parts it ran and keeps every other part's last figures.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, platform, release, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { coreParts, type Part } from './core.ts';
import { protectionParts } from './protection.ts';
import { verifyParts } from './verify.ts';
import { renderMarkdown, renderText, type Section } from './report.ts';

const SUITES: Record<string, { summary: string; parts: Part[] }> = {
  core: { summary: 'the src/core goals of DESIGN.md: per-request check, login, revocation memory', parts: coreParts },
  cluster: { summary: 'multi-node goals on real processes: logout propagation, refresh on PostgreSQL vs SQLite, Redis outage catch-up', parts: (await import('./cluster.ts')).clusterParts },
  protection: { summary: 'account protection: login with throttling, refused-login timing, key rotation', parts: protectionParts },
  verify: { summary: 'latch/verify for resource servers: per-call cost, propagation of a logout, requests per second', parts: verifyParts },
};

const RESULTS = fileURLToPath(new URL('./RESULTS.md', import.meta.url));

function usage(): string {
  const names = Object.entries(SUITES).flatMap(([name, suite]) => [name, ...suite.parts.map((p) => p.name)]);
  const width = Math.max(...names.map((n) => n.length)) + 4;
  const lines = ['usage: npm run bench [-- SUITE | PART]', '', 'suites and their parts:'];
  for (const [name, suite] of Object.entries(SUITES)) {
    lines.push(`  ${name.padEnd(width)}${suite.summary}${name === 'core' ? ' (default)' : ''}`);
    for (const part of suite.parts) lines.push(`    ${part.name.padEnd(width - 2)}${part.summary}`);
  }
  lines.push(`  ${'all'.padEnd(width)}every suite`);
  return `${lines.join('\n')}\n`;
}

/** The parts a name selects: a suite, one part of a suite, or all; null when it names nothing. */
function select(name: string): Part[] | null {
  if (name === 'all') return Object.values(SUITES).flatMap((s) => s.parts);
  const suite = SUITES[name];
  if (suite) return suite.parts;
  const part = Object.values(SUITES)
    .flatMap((s) => s.parts)
    .find((p) => p.name === name);
  return part ? [part] : null;
}

function machine(): { cpu: string; cores: number; node: string; os: string; memory: string } {
  const list = cpus();
  return {
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    node: `${process.version} (V8 ${process.versions.v8})`,
    os: `${platform()} ${release()}`,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
  };
}

async function main(args: string[]): Promise<number> {
  if (args[0] === '-h' || args[0] === '--help') {
    process.stdout.write(usage());
    return 0;
  }
  const name = args[0] ?? 'core';
  const parts = args.length <= 1 ? select(name) : null;
  if (!parts) {
    process.stderr.write(`unknown suite: ${args.join(' ')}\n\n${usage()}`);
    return 2;
  }
  if (typeof (globalThis as { gc?: unknown }).gc !== 'function') {
    process.stderr.write('the benchmarks need node --expose-gc: run them with npm run bench\n');
    return 2;
  }

  const m = machine();
  const started = new Date();
  const loadAtStart = loadavg()[0]!;
  const command = args.length === 0 ? 'npm run bench' : `npm run bench -- ${name}`;
  process.stdout.write(`Latch benchmarks: ${name}\n${m.cpu}, ${m.cores} cores; Node ${m.node}; ${m.os}\n${started.toISOString()}, load average ${loadAtStart.toFixed(2)}\n`);
  if (loadAtStart > m.cores / 2) process.stderr.write(`note: the machine is busy (load ${loadAtStart.toFixed(2)} on ${m.cores} cores): expect scattered figures\n`);

  const progress = (line: string): void => void process.stderr.write(`${line}\n`);
  const sections: Section[] = [];
  for (const part of parts) {
    progress(`running ${part.name}…`);
    const t0 = performance.now();
    const section = await part.run(progress);
    progress(`  ${part.name} took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    sections.push(section);
    process.stdout.write(renderText([section]));
  }

  const seconds = (Date.now() - started.getTime()) / 1000;
  const loadAtEnd = loadavg()[0]!;
  const stamp = `_${started.toISOString()}, \`${command}\`, load average ${loadAtStart.toFixed(2)} → ${loadAtEnd.toFixed(2)}_`;
  const blocks = readBlocks();
  parts.forEach((part, i) => blocks.set(blockId(part), `${stamp}\n\n${renderMarkdown([sections[i]!]).trim()}`));
  const ordered = Object.values(SUITES)
    .flatMap((suite) => suite.parts)
    .map((part) => [blockId(part), blocks.get(blockId(part))] as const)
    .filter((entry): entry is readonly [string, string] => entry[1] !== undefined)
    .map(([id, body]) => `<!-- ${id}:start -->\n${body}\n<!-- ${id}:end -->`);
  const header = [
    '# Benchmark results',
    '',
    'Written by `npm run bench` (bench/run.ts). Each part keeps the figures of its last run, stamped with',
    'its date, command and the load average (other work on the machine scatters the figures). Figures are',
    'printed against a baseline measured in the same run; nothing here is asserted by a test.',
    '',
    `- Machine: ${m.cpu}, ${m.cores} logical cores, ${m.memory} RAM; Node ${m.node}; ${m.os}`,
    '- Reproduce: `npm run bench -- all` (or one suite: `core`, `cluster`, `protection`, `verify`)',
    '',
  ];
  writeFileSync(RESULTS, `${header.join('\n')}\n${ordered.join('\n\n')}\n`);
  process.stdout.write(`\nwrote ${RESULTS} (${seconds.toFixed(0)} s)\n`);
  return 0;
}

const blockId = (part: Part): string => {
  const suite = Object.entries(SUITES).find(([, s]) => s.parts.includes(part))?.[0] ?? 'other';
  return `bench:${suite}/${part.name}`;
};

/** The part blocks already in RESULTS.md, by id. */
function readBlocks(): Map<string, string> {
  const blocks = new Map<string, string>();
  if (!existsSync(RESULTS)) return blocks;
  const text = readFileSync(RESULTS, 'utf8');
  for (const match of text.matchAll(/<!-- (bench:[\w-]+\/[\w-]+):start -->\n([\s\S]*?)\n<!-- \1:end -->/g)) blocks.set(match[1]!, match[2]!);
  return blocks;
}

process.exitCode = await main(process.argv.slice(2));
