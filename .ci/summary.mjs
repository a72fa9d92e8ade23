/* global process, console */
// The closing line of .ci/run, and its exit status.
//
//   node .ci/summary.mjs <vitest JSON report> <vitest exit status> [<check>=<exit status> ...]
//
// Prints what failed, then the plain line CI reads, last: `N passed, N failed, N skipped`.
// Static checks (typecheck, ESLint, buf) count as one test each. Every failure is counted, so
// the line never says `0 failed` when the run failed: a vitest that crashed before writing its
// report, or exited non-zero with no failed test (a file that does not load, an unhandled
// error), adds one failure. Exits 0 only when nothing failed and at least one test ran.
import { readFileSync } from 'node:fs';

const [reportPath, vitestStatusText, ...checkArgs] = process.argv.slice(2);
const vitestStatus = Number(vitestStatusText);

/** @returns {{ passed: number, failed: number, skipped: number, total: number, notes: string[] }} */
function vitestCounts() {
  let report;
  try {
    report = JSON.parse(readFileSync(reportPath, 'utf8'));
  } catch (err) {
    return { passed: 0, failed: 1, skipped: 0, total: 0, notes: [`vitest wrote no readable report (${err.code ?? err.message}); exit status ${vitestStatus}`] };
  }
  const notes = [];
  let failed = report.numFailedTests;
  const brokenFiles = (report.testResults ?? []).filter(
    (file) => file.status === 'failed' && !(file.assertionResults ?? []).some((a) => a.status === 'failed'),
  );
  for (const file of brokenFiles) notes.push(`${file.name}: failed outside any test: ${(file.message ?? '').split('\n')[0]}`);
  failed += brokenFiles.length;
  if (vitestStatus !== 0 && failed === 0) {
    notes.push(`vitest exited ${vitestStatus} although no test failed (see its output above)`);
    failed = 1;
  }
  const skipped = report.numPendingTests + report.numTodoTests;
  return { passed: report.numPassedTests, failed, skipped, total: report.numTotalTests, notes };
}

const checks = checkArgs.map((arg) => {
  const at = arg.lastIndexOf('=');
  return { name: arg.slice(0, at), status: Number(arg.slice(at + 1)) };
});
const failedChecks = checks.filter((c) => c.status !== 0);
const tests = vitestCounts();

for (const note of tests.notes) console.log(`-- ${note}`);
for (const c of failedChecks) console.log(`-- ${c.name} failed (exit status ${c.status})`);
if (tests.total === 0 && tests.notes.length === 0) console.log('-- vitest ran no test');

const passed = tests.passed + checks.length - failedChecks.length;
const failed = tests.failed + failedChecks.length;
console.log(`${passed} passed, ${failed} failed, ${tests.skipped} skipped`);
process.exit(failed > 0 || tests.total === 0 ? 1 : 0);
