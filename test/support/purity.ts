/**
 * Reads a pure folder ("room") the way the compiler does, so that purity tests check code, not
 * text: comments that mention clocks pass, a `Date.now()` on a continuation line does not.
 *
 * A pure file may load (value import or re-export) only files inside its own room or the
 * built-in modules it is allowed, and must not touch a clock, a timer, randomness, the process
 * or the network. Type-only imports (`import type`, `export type`) are erased at compile time and
 * are the import rules' business (eslint.config.js), not purity's.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

export interface RoomFile {
  /** Path relative to the room, with `/` separators (e.g. `engine/stages.ts`). */
  readonly file: string;
  readonly absolute: string;
  readonly source: ts.SourceFile;
}

/** Every .ts file under `dir`, recursively, sorted; subfolders included. */
export function roomFiles(dir: string): RoomFile[] {
  const out: RoomFile[] = [];
  const walk = (at: string): void => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const absolute = path.join(at, entry.name);
      if (entry.isDirectory()) walk(absolute);
      else if (entry.isFile() && entry.name.endsWith('.ts')) {
        const text = readFileSync(absolute, 'utf8');
        out.push({
          file: path.relative(dir, absolute).split(path.sep).join('/'),
          absolute,
          source: ts.createSourceFile(absolute, text, ts.ScriptTarget.ES2022, true),
        });
      }
    }
  };
  walk(dir);
  return out.sort((a, b) => a.file.localeCompare(b.file));
}

/** Every folder under `dir` (itself included), relative, for "no folder was skipped" checks. */
export function roomFolders(dir: string): string[] {
  const out = ['.'];
  const walk = (at: string, rel: string): void => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const next = rel === '.' ? entry.name : `${rel}/${entry.name}`;
      out.push(next);
      walk(path.join(at, entry.name), next);
    }
  };
  walk(dir, '.');
  return out;
}

export interface LoadedModule {
  readonly specifier: string;
  readonly line: number;
}

const lineOf = (source: ts.SourceFile, node: ts.Node): number =>
  source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;

/** Modules a file loads at run time: value imports and re-exports, `import()`, `require()`. */
export function loadedModules(source: ts.SourceFile): LoadedModule[] {
  const out: LoadedModule[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      if (!node.importClause?.isTypeOnly) out.push({ specifier: node.moduleSpecifier.text, line: lineOf(source, node) });
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      if (!node.isTypeOnly) out.push({ specifier: node.moduleSpecifier.text, line: lineOf(source, node) });
    } else if (ts.isCallExpression(node)) {
      const callee = node.expression;
      const isLoader = callee.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(callee) && callee.text === 'require');
      const arg = node.arguments[0];
      if (isLoader) out.push({ specifier: arg && ts.isStringLiteral(arg) ? arg.text : '<computed>', line: lineOf(source, node) });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

/** Globals whose any use makes code impure: time, timers, randomness, process, network. */
const IMPURE_GLOBALS = new Set(['setTimeout', 'setInterval', 'setImmediate', 'process', 'fetch', 'performance']);
/** `object.member` pairs that read a clock or randomness. */
const IMPURE_MEMBERS = new Set(['Date.now', 'Math.random', 'crypto.randomUUID', 'crypto.getRandomValues']);

/** Uses of a clock, timer, randomness, the process or the network, as `name (line N)`. */
export function impureUses(source: ts.SourceFile): string[] {
  const out: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isPropertyAccessExpression(node) && ts.isIdentifier(node.expression)) {
      const pair = `${node.expression.text}.${node.name.text}`;
      if (IMPURE_MEMBERS.has(pair)) out.push(`${pair} (line ${lineOf(source, node)})`);
    }
    if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'Date') {
      out.push(`new Date (line ${lineOf(source, node)})`);
    }
    if (ts.isIdentifier(node) && IMPURE_GLOBALS.has(node.text) && !isDeclarationName(node) && !isMemberName(node)) {
      out.push(`${node.text} (line ${lineOf(source, node)})`);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

/** `x` in `foo.x` or `{ x: 1 }`: a property name, not a reference to the global. */
function isMemberName(node: ts.Identifier): boolean {
  const parent = node.parent;
  return (
    (ts.isPropertyAccessExpression(parent) && parent.name === node) ||
    (ts.isPropertyAssignment(parent) && parent.name === node) ||
    (ts.isPropertySignature(parent) && parent.name === node) ||
    (ts.isPropertyDeclaration(parent) && parent.name === node) ||
    (ts.isMethodDeclaration(parent) && parent.name === node)
  );
}

/** A local declaration that merely shares the name (a parameter called `performance`). */
function isDeclarationName(node: ts.Identifier): boolean {
  const parent = node.parent;
  return (ts.isParameter(parent) || ts.isVariableDeclaration(parent)) && parent.name === node;
}

/** Whether `specifier`, imported from `fromFile`, stays inside `roomDir`. */
export function staysInside(roomDir: string, fromFile: string, specifier: string): boolean {
  if (!specifier.startsWith('./') && !specifier.startsWith('../')) return false;
  const target = path.resolve(path.dirname(fromFile), specifier);
  const rel = path.relative(roomDir, target);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/**
 * The purity suite for one room: it has files (an empty list means the walk is broken, not that
 * the room is pure), every folder under it is read, its files load nothing from outside the room
 * but `builtins`, and they use no clock, timer, randomness, process or network.
 */
export function describePureRoom(name: string, roomDir: string, opts: { builtins?: readonly string[] } = {}): void {
  const builtins = new Set(opts.builtins ?? []);
  const files = roomFiles(roomDir);
  describe(`the ${name} room is pure`, () => {
    it('has files to check, from every folder under it', () => {
      expect(files.length, `no .ts files under ${roomDir}`).toBeGreaterThan(0);
      for (const folder of roomFolders(roomDir)) {
        const prefix = folder === '.' ? '' : `${folder}/`;
        const direct = files.filter((f) => f.file.startsWith(prefix) && !f.file.slice(prefix.length).includes('/'));
        expect(direct.length, `folder ${folder} of ${roomDir} has no .ts file checked`).toBeGreaterThan(0);
      }
    });

    it(`loads only its own files${builtins.size > 0 ? ` and ${[...builtins].join(', ')}` : ''}`, () => {
      const outside = files.flatMap(({ file, absolute, source }) =>
        loadedModules(source)
          .filter((m) => !builtins.has(m.specifier) && !staysInside(roomDir, absolute, m.specifier))
          .map((m) => `${file}:${m.line} loads ${m.specifier}`),
      );
      expect(outside).toEqual([]);
    });

    it('reads no clock, timer or randomness, and touches neither process nor network', () => {
      const impure = files.flatMap(({ file, source }) => impureUses(source).map((use) => `${file}: ${use}`));
      expect(impure).toEqual([]);
    });
  });
}
